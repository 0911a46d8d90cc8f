// The web chat page and replies in threads (docs/PROTOCOL.md 4.7.3), end to end: a real
// node, its bridge, and users' pages in headless Chromium. Ann posts; bob opens "Reply
// in thread" on it and replies in the thread panel; ann sees "1 reply" under her message
// at once, opens the thread, sees bob's reply and answers; bob's open panel shows her
// answer as it arrives. Neither timeline shows the replies. Bob edits his reply and ann's
// panel shows it edited. A page opened afterwards shows "2 replies" from history, and
// its panel both replies from `history {thread}`; a reply (`reply_to`) outside the
// thread shows what it answers; and the node's history agrees.
//
// Usage: node threads_test.mjs SWITCHBOARD_BINARY WEB_DIR OUT_DIR
// Saves OUT_DIR/threads.png. Every wait is on something the page shows, with a
// deadline; nothing sleeps in place of synchronisation.
import assert from "node:assert/strict";
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { startNode, stopNode, launch, until, watch, storedHistory, WAIT } from "./harness.mjs";

const [binary, webDir, outDir] = process.argv.slice(2);
const ROOM = "threads";
const ROOT = "Lunch on Friday?";
const BOB = "yes, at noon";
const BOB_EDITED = "yes, at noon, the usual place";
const ANN = "booked for two";

// What a page shows, read in the page (each function stands alone: it runs there).
// The room's timeline: the messages that take room on screen, with their thread
// summaries ("2 replies" and who replied) and what they answer.
const timeline = () => [...document.querySelectorAll("#messages li.msg")].filter((li) => li.offsetHeight > 0).map((li) => ({
  user: li.querySelector(".user").textContent,
  body: li.querySelector(".body").textContent,
  ...(li.querySelector(".thread-link") ? { replies: li.querySelector(".thread-link").textContent } : {}),
  ...(li.querySelector(".repliers") ? { repliers: li.querySelector(".repliers").textContent } : {}),
  ...(li.querySelector(".reply-to") ? { replyTo: li.querySelector(".reply-to").textContent } : {}),
}));
// The thread panel: null when closed; else its root, its count and its replies ("user: body", edited marked).
const threadPanel = () => {
  const panel = document.getElementById("thread");
  if (!panel || panel.hidden || panel.offsetHeight === 0) return null;
  const line = (li) => `${li.querySelector(".user").textContent}: ${li.querySelector(".body").textContent}${li.querySelector(".edited") ? " (edited)" : ""}`;
  return {
    root: [...panel.querySelectorAll("#thread-root li.msg")].map(line),
    count: panel.querySelector("#thread-count").textContent,
    replies: [...panel.querySelectorAll("#thread-messages li.msg")].filter((li) => li.offsetHeight > 0).map(line),
  };
};

// Waits until `view(arg)`, read in the page, is `want`; fails saying what it shows instead.
async function waitFor(page, view, arg, want, what) {
  const deadline = Date.now() + WAIT;
  let got;
  for (;;) {
    try {
      got = await page.evaluate(view, arg);
      if (JSON.stringify(got) === JSON.stringify(want)) return;
    } catch (err) {  // the page navigated while asked: ask the new one
      if (!/Execution context was destroyed|Cannot find context/.test(err.message)) throw err;
    }
    if (Date.now() > deadline) assert.fail(`${what}: timed out; want ${JSON.stringify(want)}, shown ${JSON.stringify(got)}`);
    await new Promise((resolve) => setTimeout(resolve, 20));  // between polls, up to the deadline
  }
}

// Publishes `fields` to ROOM as `user` over a WebSocket of the page's own (a client
// that is not the page: to send what the page has no control for).
function publishAs(page, user, fields) {
  return page.evaluate(async ([user, room, fields]) => {
    const ws = new WebSocket(`${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/ws`);
    await new Promise((resolve, reject) => { ws.onopen = resolve; ws.onerror = reject; });
    let id = 0;
    const request = (op, f) => new Promise((resolve, reject) => {
      const mine = ++id;
      ws.addEventListener("message", function answer(e) {
        const frame = JSON.parse(e.data);
        if (frame.id !== mine) return;
        ws.removeEventListener("message", answer);
        if (frame.op === "error") reject(new Error(`${frame.code}: ${frame.message}`));
        else resolve(frame);
      });
      ws.send(JSON.stringify({ op, id: mine, ...f }));
    });
    await request("auth", { user });
    await request("join", { room });
    const reply = await request("publish", { room, cmid: crypto.randomUUID(), ...fields });
    ws.close();
    return reply.seq;
  }, [user, ROOM, fields]);
}

const node = await startNode(binary, webDir);
const browser = await launch();
const failures = [];
try {
  const open = async (user) => {
    const page = await (await browser.newContext({ viewport: { width: 1280, height: 720 } })).newPage();
    watch(page, user, (text) => failures.push(text));
    page.on("dialog", (dialog) => (page.__answer ? dialog.accept(page.__answer()) : dialog.dismiss()));  // Edit asks for the text
    await page.goto(`${node.http}?user=${user}&room=${ROOM}`);
    await until(page, (u) => document.getElementById("status").textContent === `connected as ${u}`, user);
    return page;
  };
  const panelOf = (page) => page.getByRole("complementary", { name: "Thread" });
  const rootItem = (page) => page.locator('#messages li.msg[data-seq="1"]');

  const ann = await open("ann");
  const bob = await open("bob");
  await ann.fill("#text", ROOT);
  await ann.press("#text", "Enter");
  for (const page of [ann, bob])
    await waitFor(page, timeline, null, [{ user: "ann", body: ROOT }], "ann's message in the room");
  assert.equal(await panelOf(bob).isVisible(), false, "no thread open at first");

  // Bob replies in a thread on it: the panel opens on ann's message, ready to write.
  await rootItem(bob).hover();
  await rootItem(bob).getByRole("button", { name: "Reply in thread" }).click();
  await waitFor(bob, threadPanel, null, { root: [`ann: ${ROOT}`], count: "No replies yet", replies: [] }, "bob's thread panel, opened");
  const bobReply = panelOf(bob).getByRole("textbox", { name: "Reply", exact: true });
  assert.equal(await bobReply.evaluate((e) => e === document.activeElement), true, "the reply field has the focus");
  await bobReply.fill(BOB);
  await bobReply.press("Enter");
  await waitFor(bob, threadPanel, null, { root: [`ann: ${ROOT}`], count: "1 reply", replies: [`bob: ${BOB}`] }, "bob's reply, in his panel");

  // Ann sees "1 reply" under her message, live; the reply itself is not in the room.
  const annRoom1 = [{ user: "ann", body: ROOT, replies: "1 reply", repliers: "bob" }];
  await waitFor(ann, timeline, null, annRoom1, "ann's timeline after bob's reply");
  await waitFor(bob, timeline, null, annRoom1, "bob's timeline after his reply");

  // Ann opens the thread from the count: bob's reply, read from the thread's history.
  await rootItem(ann).getByRole("button", { name: "1 reply" }).click();
  await waitFor(ann, threadPanel, null, { root: [`ann: ${ROOT}`], count: "1 reply", replies: [`bob: ${BOB}`] }, "ann's thread panel");
  const annReply = panelOf(ann).getByRole("textbox", { name: "Reply", exact: true });
  await annReply.fill(ANN);
  await annReply.press("Enter");
  const both = { root: [`ann: ${ROOT}`], count: "2 replies", replies: [`bob: ${BOB}`, `ann: ${ANN}`] };
  await waitFor(ann, threadPanel, null, both, "ann's reply, in her panel");
  await waitFor(bob, threadPanel, null, both, "ann's reply, live in bob's open panel");
  const room2 = [{ user: "ann", body: ROOT, replies: "2 replies", repliers: "bob, ann" }];
  for (const page of [ann, bob]) await waitFor(page, timeline, null, room2, "the timeline after two replies");
  // Both replies have their place in the room's seqs, and take none on screen.
  assert.deepEqual(await ann.$$eval("#messages li.msg", (items) => items.map((li) => li.dataset.seq)), ["1", "2", "3"]);
  assert.equal(await ann.locator("#messages").getByText(BOB).count(), 0, "bob's reply is not in ann's timeline");
  assert.equal(await bob.locator("#messages").getByText(ANN).count(), 0, "ann's reply is not in bob's timeline");

  // Bob edits his reply in the panel; ann's panel shows it edited.
  bob.__answer = () => BOB_EDITED;
  const bobItem = panelOf(bob).locator('#thread-messages li.msg[data-seq="2"]');
  await bobItem.hover();
  await bobItem.getByRole("button", { name: "Edit" }).click();
  const edited = { root: [`ann: ${ROOT}`], count: "2 replies", replies: [`bob: ${BOB_EDITED} (edited)`, `ann: ${ANN}`] };
  await waitFor(ann, threadPanel, null, edited, "bob's edit, in ann's panel");
  await waitFor(bob, threadPanel, null, edited, "bob's edit, in his panel");
  mkdirSync(outDir, { recursive: true });
  await ann.screenshot({ path: join(outDir, "threads.png") });

  // A page opened now: "2 replies" from history, the replies only in the thread.
  const cy = await open("cy");
  await waitFor(cy, timeline, null, room2, "a page opened later");
  await rootItem(cy).getByRole("button", { name: "2 replies" }).click();
  await waitFor(cy, threadPanel, null, edited, "its thread, from history");
  await panelOf(cy).getByRole("button", { name: "Close thread" }).click();
  await waitFor(cy, threadPanel, null, null, "the thread closed");

  // A reply outside any thread: the room shows it, with the message it answers.
  const answer = await publishAs(cy, "dan", { body: "count me in", reply_to: 1 });
  await waitFor(cy, timeline, null, [...room2, { user: "dan", body: "count me in", replyTo: `↪ replying to ann: ${ROOT}` }],
    "a reply in the room");

  // The node's history agrees: the root counts both replies, who replied in order.
  const stored = await storedHistory(node, ROOM);
  const bySeq = new Map(stored.map((m) => [m.seq, m]));
  const root = bySeq.get(1);
  assert.equal(root.replies, 2, "the root counts two replies");
  assert.equal(root.last_reply, 3, "the newest is ann's");
  assert.deepEqual(root.repliers, ["bob", "ann"], "bob replied first, then ann");
  assert.deepEqual([bySeq.get(2).thread, bySeq.get(2).user, bySeq.get(2).body], [1, "bob", BOB_EDITED]);
  assert.deepEqual([bySeq.get(3).thread, bySeq.get(3).user, bySeq.get(3).body], [1, "ann", ANN]);
  assert.equal(bySeq.get(answer).reply_to, 1, "dan's message answers the root");
  assert.equal(bySeq.get(answer).thread, undefined, "and is in no thread");
  assert.deepEqual(failures, [], "no errors in the pages");
  console.log(`threads: ok; screenshot in ${outDir}`);
} finally {
  await browser.close();
  await stopNode(node);
}
