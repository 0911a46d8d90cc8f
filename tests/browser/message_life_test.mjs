// The web chat page and a message's life (docs/PROTOCOL.md 4.7.2), end to end: a real
// node, its bridge, and two users' pages in headless Chromium. Ann edits her message
// and bob sees the new text, marked edited; bob reacts and both see the count, bob's
// own marked; bob takes it back; ann deletes and both see a tombstone; bob has no Edit
// or Delete on ann's message; a page opened afterwards shows each message as it is now;
// and the node's history agrees.
//
// Usage: node message_life_test.mjs SWITCHBOARD_BINARY WEB_DIR OUT_DIR
// Saves OUT_DIR/message_life.png. Every wait is on something the page shows, with a
// deadline; nothing sleeps in place of synchronisation.
import assert from "node:assert/strict";
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { startNode, stopNode, launch, until, watch, storedHistory } from "./harness.mjs";

const [binary, webDir, outDir] = process.argv.slice(2);
const ROOM = "life";

// What the page shows of the message with `seq`: its body, whether it is marked edited
// or deleted, its reaction chips ("key count"; the user's own with a *), its actions.
async function shown(page, seq) {
  return page.evaluate((seq) => {
    const li = document.querySelector(`#messages li.msg[data-seq="${seq}"]`);
    if (!li) return null;
    return {
      body: li.querySelector(".body")?.textContent,
      edited: li.querySelector(".edited") !== null,
      deleted: li.classList.contains("deleted"),
      reactions: [...li.querySelectorAll(".reaction")].map((c) => c.textContent + (c.classList.contains("mine") ? "*" : "")),
      actions: [...li.querySelectorAll(".act")].map((b) => b.textContent),
    };
  }, seq);
}

async function waitShown(page, seq, want, what) {
  try {
    await until(page, ([seq, want]) => {
      const li = document.querySelector(`#messages li.msg[data-seq="${seq}"]`);
      if (!li) return false;
      const got = {
        body: li.querySelector(".body")?.textContent,
        edited: li.querySelector(".edited") !== null,
        deleted: li.classList.contains("deleted"),
        reactions: [...li.querySelectorAll(".reaction")].map((c) => c.textContent + (c.classList.contains("mine") ? "*" : "")),
      };
      return JSON.stringify(got) === JSON.stringify(want);
    }, [seq, want]);
  } catch (e) {
    assert.fail(`${what}: ${e.message}; shown: ${JSON.stringify(await shown(page, seq))}`);
  }
}

const node = await startNode(binary, webDir);
const browser = await launch();
const failures = [];
try {
  const open = async (user) => {
    const page = await (await browser.newContext()).newPage();
    watch(page, user, (text) => failures.push(text));
    // Edit asks for the new text (a prompt), Delete for a yes (a confirm): answered as the test says.
    page.on("dialog", (dialog) => {
      if (!page.__answer) return dialog.dismiss();
      return dialog.type() === "prompt" ? dialog.accept(page.__answer()) : dialog.accept();
    });
    await page.goto(`${node.http}?user=${user}&room=${ROOM}`);
    await until(page, (u) => document.getElementById("status").textContent === `connected as ${u}`, user);
    return page;
  };
  const ann = await open("ann");
  const bob = await open("bob");
  await ann.fill("#text", "helo wrold");
  await ann.press("#text", "Enter");
  for (const page of [ann, bob])
    await waitShown(page, 1, { body: "helo wrold", edited: false, deleted: false, reactions: [] }, "the message");
  const item = '#messages li.msg[data-seq="1"]';
  assert.deepEqual((await shown(bob, 1)).actions, ["☺+"], "bob may only react to ann's message");
  assert.deepEqual((await shown(ann, 1)).actions, ["☺+", "Edit", "Delete"], "ann may edit and delete hers");

  // Ann edits: both see the new text, marked edited.
  ann.__answer = () => "hello world";
  await ann.hover(item);
  await ann.click(`${item} .act.edit`);
  for (const page of [ann, bob])
    await waitShown(page, 1, { body: "hello world", edited: true, deleted: false, reactions: [] }, "after the edit");

  // Bob reacts from the palette: one 👍, bob's own marked on his page only.
  await bob.hover(item);
  await bob.click(`${item} .act.react`);
  await bob.click(`${item} .palette .pick >> text=👍`);
  await waitShown(bob, 1, { body: "hello world", edited: true, deleted: false, reactions: ["👍 1*"] }, "bob's reaction, on bob's page");
  await waitShown(ann, 1, { body: "hello world", edited: true, deleted: false, reactions: ["👍 1"] }, "bob's reaction, on ann's page");
  // Ann adds hers by clicking the chip; bob takes his back by clicking it.
  await ann.click(`${item} .reaction`);
  await waitShown(bob, 1, { body: "hello world", edited: true, deleted: false, reactions: ["👍 2*"] }, "two reactions");
  await bob.click(`${item} .reaction`);
  await waitShown(ann, 1, { body: "hello world", edited: true, deleted: false, reactions: ["👍 1*"] }, "bob's taken back");
  await waitShown(bob, 1, { body: "hello world", edited: true, deleted: false, reactions: ["👍 1"] }, "bob's taken back, on his page");
  mkdirSync(outDir, { recursive: true });
  await bob.screenshot({ path: join(outDir, "message_life.png") });

  // A page opened now shows the message as it is (from history), entries taking no room.
  const late = await (await browser.newContext()).newPage();
  watch(late, "cy", (text) => failures.push(text));
  await late.goto(`${node.http}?user=cy&room=${ROOM}`);
  await waitShown(late, 1, { body: "hello world", edited: true, deleted: false, reactions: ["👍 1"] }, "a page opened later");
  const visible = await late.$$eval("#messages li.msg", (items) => items.filter((li) => li.offsetHeight > 0).length);
  assert.equal(visible, 1, "edits and reactions are not shown as messages of their own");

  // Ann deletes: a tombstone everywhere, no reactions, no actions.
  ann.__answer = () => true;
  await ann.hover(item);
  await ann.click(`${item} .act.delete`);
  for (const page of [ann, bob, late])
    await waitShown(page, 1, { body: "message deleted", edited: false, deleted: true, reactions: [] }, "after the delete");
  assert.deepEqual((await shown(bob, 1)).actions, [], "nothing to do with a deleted message");

  const stored = await storedHistory(node, ROOM);
  assert.equal(stored[0].deleted, true, "the node has it deleted");
  assert.equal(stored[0].body, "", "and its text erased");
  assert.deepEqual(stored.slice(1).map((m) => m.kind), ["edit", "react", "react", "react", "delete"]);
  assert.equal(stored[1].body, "", "the edit's text erased with it");
  assert.deepEqual(failures, [], "no errors in the pages");
  console.log(`message life: ok; screenshot in ${outDir}`);
} finally {
  await browser.close();
  await stopNode(node);
}
