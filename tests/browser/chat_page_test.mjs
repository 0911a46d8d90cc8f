// The web chat page (examples/web/) end to end: a real node, its bridge, and pages in
// headless Chromium (Debian's chromium, driven by playwright-core): two users, then a
// second tab of one of them, 390 px wide, for the room list and read state.
//
// Usage: node chat_page_test.mjs SWITCHBOARD_BINARY WEB_DIR OUT_DIR
// Saves OUT_DIR/chat_page.png and OUT_DIR/chat_page_narrow.png. Every wait is on
// something the page shows, with a deadline; nothing sleeps in place of synchronisation.
import { spawn, execFileSync } from "node:child_process";
import { mkdtempSync, rmSync, mkdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import assert from "node:assert/strict";
import { chromium } from "playwright-core";

const [binary, webDir, outDir] = process.argv.slice(2);
const WAIT = 20_000;

function startNode(...extra) {
  const data = mkdtempSync(join(tmpdir(), "switchboard-browser-"));
  const proc = spawn(binary, ["run", "--data", data, "--listen", "tcp://127.0.0.1:*", "--durability", "nosync",
    "--bridge", "127.0.0.1:*", "--web", webDir, ...extra], { stdio: ["ignore", "pipe", "inherit"] });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error("the node did not become ready")), 30_000);
    createInterface({ input: proc.stdout }).on("line", (line) => {
      const m = line.match(/^switchboard ready .* bridge=ws(s?):\/\/(\S+)\//);
      if (!m) return;
      clearTimeout(timer);
      resolve({ proc, data, http: `http${m[1]}://${m[2]}/` });
    });
    proc.on("exit", (code) => reject(new Error(`the node exited (${code}) before it was ready`)));
  });
}

async function stopNode(node) {
  node.proc.kill("SIGTERM");
  await new Promise((resolve) => node.proc.once("exit", resolve));
  rmSync(node.data, { recursive: true, force: true });
}

// Waits until `predicate(arg)`, evaluated in the page, is true, with a deadline. Polled
// with page.evaluate: the page runs under the bridge's Content-Security-Policy, which
// forbids the eval that page.waitForFunction relies on.
async function until(page, predicate, arg) {
  const deadline = Date.now() + WAIT;
  for (;;) {
    if (await page.evaluate(predicate, arg)) return;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${predicate}`);
    await new Promise((resolve) => setTimeout(resolve, 20));  // between polls, up to the deadline
  }
}

async function messages(page) {
  return page.$$eval("#messages li[data-seq]", (items) => items.map((li) => ({
    seq: Number(li.dataset.seq), user: li.querySelector(".user").textContent,
    body: li.querySelector(".body").textContent,
  })));
}

async function waitForMessages(page, count) {
  await until(page, (n) => document.querySelectorAll("#messages li[data-seq]").length >= n, count);
  return messages(page);
}

// Waits until `room` is open and shows `count` messages.
async function waitForRoom(page, room, count) {
  await until(page, ([r, n]) => state.room === r && location.hash === `#${r}` &&
    document.getElementById("room-title").textContent === `# ${r}` &&
    document.querySelectorAll("#messages li[data-seq]").length === n, [room, count]);
  return messages(page);
}

// Waits until the room list shows `count` unread for `room` (0: no badge).
async function waitForBadge(page, room, count) {
  await until(page, ([r, n]) => {
    const badge = document.querySelector(`#rooms li[data-room="${r}"] .badge`);
    return badge !== null && (n === 0 ? badge.hidden : !badge.hidden && badge.textContent === String(n));
  }, [room, count]);
}

async function waitForTitle(page, title) {
  await until(page, (t) => document.title === t, title);
}

// The seqs of the messages either side of the "new messages" divider (null: none).
async function divider(page) {
  return page.evaluate(() => {
    const d = document.querySelector("#messages .divider");
    if (!d) return null;
    const seq = (el) => (el ? Number(el.dataset.seq) : null);
    return { before: seq(d.previousElementSibling), after: seq(d.nextElementSibling) };
  });
}

async function roomOrder(page) {
  return page.$$eval("#rooms li", (items) => items.map((li) => li.dataset.room));
}

async function send(page, text) {
  await page.fill("#text", text);
  await page.press("#text", "Enter");
  // Sent once the input is cleared (after the node's ack).
  await until(page, () => document.getElementById("text").value === "", null);
}

function assertOrderedOnce(list, expectedBodies, who) {
  assert.deepEqual(list.map((m) => m.body), expectedBodies, `${who}: bodies in order`);
  assert.deepEqual(list.map((m) => m.seq), expectedBodies.map((_, i) => i + 1), `${who}: seqs 1..n, no gap, no duplicate`);
}

const node = await startNode();
const browser = await chromium.launch({ executablePath: "/usr/bin/chromium", headless: true, args: ["--no-sandbox"] });
let failed = false;
try {
  // A page of `user`'s in a new browser context, or a second tab in `context`.
  const open = async (user, { context = null, hash = "", phone = false } = {}) => {
    const page = await (context ?? await browser.newContext()).newPage();
    page.on("pageerror", (e) => { failed = true; console.error(`${user}: page error: ${e.message}`); });
    // The page must work under the bridge's Content-Security-Policy: a violation fails the test.
    page.on("console", (m) => {
      if (m.type() === "error" && m.text().includes("Content Security Policy")) {
        failed = true;
        console.error(`${user}: ${m.text()}`);
      }
    });
    if (phone) await page.setViewportSize({ width: 390, height: 780 });
    await page.goto(`${node.http}?user=${user}&room=lobby${hash}`);
    await until(page, (u) => document.getElementById("status").textContent === `connected as ${u}`, user);
    return page;
  };
  const ann = await open("ann");
  const bob = await open("bob");

  // Presence: each sees both.
  for (const page of [ann, bob])
    for (const user of ["ann", "bob"]) await page.waitForSelector(`#who li[data-user="${user}"]`);

  // Typing indicator (bob's first keystrokes: notices go at most every 2 s).
  await bob.type("#text", "typ");
  await until(ann, () => document.getElementById("typing").textContent.includes("bob is typing"), null);
  await bob.fill("#text", "");

  // Typed in one page, shown in the other, in order.
  const sent = ["hello bob", "are you there?", "third message"];
  for (const text of sent) await send(ann, text);
  assertOrderedOnce(await waitForMessages(bob, 3), sent, "bob");
  await send(bob, "yes, here");
  sent.push("yes, here");
  assertOrderedOnce(await waitForMessages(ann, 4), sent, "ann");


  // The connection drops; the page reconnects by itself and misses nothing.
  assert.equal(await ann.evaluate(() => state.connections), 1);
  await ann.evaluate(() => state.ws.close());
  for (const text of ["while you were away", "and another"]) {
    await send(bob, text);
    sent.push(text);
  }
  await until(ann, () => state.connections === 2, null);
  assertOrderedOnce(await waitForMessages(ann, 6), sent, "ann after a reconnect");

  // A reload shows the whole history, once.
  await ann.reload();
  await until(ann, () => document.getElementById("status").textContent === "connected as ann", null);
  assertOrderedOnce(await waitForMessages(ann, 6), sent, "ann after a reload");
  await send(ann, "back again");
  sent.push("back again");
  assertOrderedOnce(await waitForMessages(bob, 7), sent, "bob");
  assertOrderedOnce(await waitForMessages(ann, 7), sent, "ann");
  await ann.waitForSelector('#who li[data-user="bob"]');

  // Rooms. bob creates one from the room list: it opens, and the address names it.
  await bob.fill("#new-room", "side");
  await bob.click('#room-form button[value="create"]');
  await waitForRoom(bob, "side", 0);
  // ann joins it by name, then goes back to the lobby by its link: the lobby shows as it was.
  await ann.fill("#new-room", "side");
  await ann.click('#room-form button[value="join"]');
  await waitForRoom(ann, "side", 0);
  await ann.click('#rooms a[href="#lobby"]');
  assertOrderedOnce(await waitForRoom(ann, "lobby", 7), sent, "ann back in the lobby");
  await ann.waitForSelector('#who li[data-user="bob"]');

  // A second tab of ann's, phone-sized, in the lobby.
  const ann2 = await open("ann", { context: ann.context(), phone: true });
  await waitForRoom(ann2, "lobby", 7);
  assert.deepEqual(await roomOrder(ann2), ["side", "lobby"], "newest activity first (side was created last)");

  // bob writes in side, which neither tab of ann's has open: both count them, and say so
  // in the tab's title; bob's own messages are read for him.
  const side = ["s1", "s2"];
  for (const text of side) await send(bob, text);
  for (const page of [ann, ann2]) {
    await waitForBadge(page, "side", 2);
    await waitForTitle(page, "(2) Switchboard chat");
    assert.equal(await page.textContent('#rooms li[data-room="side"] .preview'), "bob: s2");
  }
  await waitForBadge(bob, "side", 0);
  await waitForTitle(bob, "Switchboard chat");
  await waitForBadge(ann, "lobby", 0);

  // ann opens side in tab 1: the divider stands above s1 (she had read none of it), the
  // tab marks it read, and tab 2's badge clears with the pushed read frame, no reload.
  await ann.click('#rooms a[href="#side"]');
  assertOrderedOnce(await waitForRoom(ann, "side", 2), side, "ann in side");
  assert.deepEqual(await divider(ann), { before: null, after: 1 }, "divider above the first unread");
  for (const page of [ann, ann2]) {
    await waitForBadge(page, "side", 0);
    await waitForTitle(page, "Switchboard chat");
  }

  // Tab 1 goes back to the lobby; bob writes three more. Tab 2 opens side from the
  // drawer: the divider sits between what ann read (s2) and the first new one (s3).
  await ann.click('#rooms a[href="#lobby"]');
  await waitForRoom(ann, "lobby", 7);
  // s4 names @ann, a member: a mention, marked in her room list until she reads it.
  for (const text of ["s3", "s4 @ann", "s5"]) {
    await send(bob, text);
    side.push(text);
  }
  for (const page of [ann, ann2]) {
    await waitForBadge(page, "side", 3);
    await waitForTitle(page, "(3) Switchboard chat");
    await page.waitForSelector('#rooms li[data-room="side"] .mention', { state: "attached" });
    await until(page, () => !document.querySelector('#rooms li[data-room="side"] .mention').hidden, null);
  }
  assert.equal(await ann2.textContent("#rooms-total"), "3", "the drawer's button shows the unread total");
  assert.equal(await ann2.isVisible('#rooms a[href="#side"]'), false, "the room list is folded at 390 px");
  await ann2.click("#rooms-toggle");
  await ann2.waitForSelector('#rooms a[href="#side"]', { state: "visible" });
  mkdirSync(outDir, { recursive: true });
  await ann2.screenshot({ path: join(outDir, "chat_page_narrow.png") });  // the drawer, with its badge
  await ann2.click('#rooms a[href="#side"]');
  assertOrderedOnce(await waitForRoom(ann2, "side", 5), side, "ann's second tab in side");
  assert.deepEqual(await divider(ann2), { before: 2, after: 3 }, "divider at ann's read marker");
  assert.equal(await ann2.isVisible("#rooms-nav"), false, "the drawer folds once a room is chosen");
  assert.equal(await ann2.getAttribute('#messages li.mentions-me', "data-seq"), "4", "the message that names her is marked");
  for (const page of [ann, ann2]) {
    await waitForBadge(page, "side", 0);
    await waitForTitle(page, "Switchboard chat");
    await until(page, () => document.querySelector('#rooms li[data-room="side"] .mention').hidden, null);
  }
  assert.ok(await ann2.evaluate(() => document.documentElement.scrollWidth <= innerWidth), "no sideways scrolling at 390 px");

  // Who is online and typing work in the phone-sized tab (ann's first keystrokes there).
  for (const user of ["ann", "bob"]) await ann2.waitForSelector(`#who li[data-user="${user}"]`);
  await ann2.type("#text", "typ");
  await until(bob, () => document.getElementById("typing").textContent.includes("ann is typing"), null);
  await ann2.fill("#text", "");

  await ann.bringToFront();  // a tab is drawn only in front of its window
  await ann.screenshot({ path: join(outDir, "chat_page.png"), fullPage: true });

  // A link names a room: it opens there, with no divider once everything is read.
  const ann3 = await open("ann", { hash: "#side" });
  assertOrderedOnce(await waitForRoom(ann3, "side", 5), side, "ann opening side by its link");
  assert.equal(await divider(ann3), null, "no divider when nothing is unread");

  // The same page over https://, speaking wss:// to a bridge with a certificate (a
  // self-signed one, so this browser context is told to accept it).
  const certs = mkdtempSync(join(tmpdir(), "switchboard-browser-tls-"));
  execFileSync("openssl", ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
    "-days", "2", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
    "-keyout", join(certs, "bridge.key"), "-out", join(certs, "bridge.crt")], { stdio: "ignore" });
  const secure = await startNode("--bridge-cert", join(certs, "bridge.crt"), "--bridge-key", join(certs, "bridge.key"));
  try {
    assert.match(secure.http, /^https:\/\//);
    const page = await (await browser.newContext({ ignoreHTTPSErrors: true })).newPage();
    page.on("pageerror", (e) => { failed = true; console.error(`tls page: page error: ${e.message}`); });
    await page.goto(`${secure.http}?user=dee&room=vault`);
    await until(page, () => document.getElementById("status").textContent === "connected as dee", null);
    assert.match(await page.evaluate(() => state.ws.url), /^wss:\/\//);
    await send(page, "over tls");
    assertOrderedOnce(await waitForMessages(page, 1), ["over tls"], "dee over wss");
  } finally {
    await stopNode(secure);
    rmSync(certs, { recursive: true, force: true });
  }
  assert.equal(failed, false, "no errors in the pages");
  console.log(`chat page: ok (ws and wss); screenshot in ${join(outDir, "chat_page.png")}`);
} finally {
  await browser.close();
  await stopNode(node);
}
