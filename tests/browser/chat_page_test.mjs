// The web chat page (examples/web/) end to end: a real node, its bridge, and pages in
// headless Chromium (Debian's chromium, driven by playwright-core): two users, then a
// second tab of one of them, 390 px wide, for the room list, read state and drawers.
// Also: links and markup in bodies and room names stay text; statuses and typing;
// a private room one may not open; private rooms made from the page, an owner adding a
// member, leaving a room (and the last one, back to the entry screen); desktop
// notifications while the tab is hidden; signing in with a token on a node run with
// --token-key; and the page over TLS.
//
// Usage: node chat_page_test.mjs SWITCHBOARD_BINARY WEB_DIR OUT_DIR
// Saves OUT_DIR/chat_page.png, chat_page_narrow.png (the room drawer at 390 px),
// chat_page_narrow_online.png and chat_page_narrow_leave.png (the leave question).
// Every wait is on something the page shows, with a deadline; nothing sleeps in place
// of synchronisation.
import { execFileSync } from "node:child_process";
import { createPrivateKey, generateKeyPairSync, sign } from "node:crypto";
import { mkdtempSync, rmSync, mkdirSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import assert from "node:assert/strict";
import { startNode, stopNode, launch, until, watch, shownMessages, cli } from "./harness.mjs";

const [binary, webDir, outDir] = process.argv.slice(2);
const XSS = "<img src=x onerror=window.__pwned=1>";

const messages = shownMessages;

async function waitForMessages(page, count) {
  await until(page, (n) => document.querySelectorAll("#messages li[data-seq]").length >= n, count);
  return messages(page);
}

// Waits until `room` is open and shows `count` messages.
async function waitForRoom(page, room, count) {
  await until(page, ([r, n]) => state.room === r && location.hash === `#${encodeURIComponent(r)}` &&
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
  try {
    await until(page, (t) => document.title === t, title);
  } catch (err) {
    const seen = await page.evaluate(() => [document.title, [...state.rooms].map(([n, r]) => `${n}: ${r.lastSeq - r.readSeq}`)]);
    throw new Error(`${err.message}; the title is ${JSON.stringify(seen[0])}, unread ${JSON.stringify(seen[1])}`);
  }
}

// The seqs of the messages either side of the "new messages" divider (null: none).
async function divider(page) {
  return page.evaluate(() => {
    const d = document.querySelector("#messages .divider");
    if (!d) return null;
    const near = (el, step) => {  // the nearest message that way, past day separators
      while (el && !el.dataset.seq) el = el[step];
      return el ? Number(el.dataset.seq) : null;
    };
    return { before: near(d.previousElementSibling, "previousElementSibling"), after: near(d.nextElementSibling, "nextElementSibling") };
  });
}

// The open room's member list: [user, role] in the order shown.
async function memberList(page) {
  return page.$$eval("#members li", (items) => items.map((li) => [li.dataset.user, li.dataset.role]));
}

// Creates `name` from the room form, private or not, and waits until it is open.
async function createRoom(page, name, { hidden = false } = {}) {
  await page.fill("#new-room", name);
  await page.setChecked("#new-private", hidden);
  await page.click('#room-form button[value="create"]');
  await waitForRoom(page, name, 0);
}

// Fills the open room's Add member form with `user`, sends it, and waits for `note`.
async function addMember(page, user, note) {
  if (await page.isHidden("#add-form")) await page.click("#add-open");
  await page.fill("#add-user", user);
  await page.click('#add-form button[type="submit"]');
  await until(page, (t) => document.getElementById("room-note").textContent === t, note);
}

async function roomOrder(page) {
  return page.$$eval("#rooms li", (items) => items.map((li) => li.dataset.room));
}

// Types and sends `text`, then waits until the room shows it (with its seq) and nothing
// of the user's is left being sent.
async function send(page, text) {
  await page.fill("#text", text);
  await page.press("#text", "Enter");
  await until(page, (t) => document.getElementById("text").value === "" &&
    document.querySelectorAll("#outbox li").length === 0 &&
    [...document.querySelectorAll("#messages li.mine[data-seq] .body")].some((b) => b.textContent === t), text);
}

function assertOrderedOnce(list, expectedBodies, who) {
  assert.deepEqual(list.map((m) => m.body), expectedBodies, `${who}: bodies in order`);
  assert.deepEqual(list.map((m) => m.seq), expectedBodies.map((_, i) => i + 1), `${who}: seqs 1..n, no gap, no duplicate`);
}

// What of the page a user cannot see whole at this size: visible elements reaching
// past the viewport's sides (or, for the fixed parts and open drawers, its bottom),
// and text cut short. Room previews are one line by design and do not count.
async function cutOff(page) {
  return page.evaluate(() => {
    const out = [];
    const name = (e) => e.id ? `#${e.id}` : `${e.tagName.toLowerCase()}.${[...e.classList].join(".")}`;
    for (const e of document.querySelectorAll("body *")) {
      const style = getComputedStyle(e);
      if (e.closest(".preview") || style.visibility === "hidden") continue;
      const r = e.getBoundingClientRect();
      if (!r.width || !r.height) continue;
      if (r.left < -0.5 || r.right > innerWidth + 0.5) out.push(`${name(e)} beyond the sides (${r.left}..${r.right})`);
      // Lists that scroll hold items out of view by design; the rest must be in view.
      if (!e.closest("#scroller, #rooms, #who, #members") && r.bottom > innerHeight + 0.5) out.push(`${name(e)} below the bottom (${r.bottom})`);
      if (e.scrollWidth > e.clientWidth + 1 && style.overflowX !== "visible" && !["auto", "scroll"].includes(style.overflowX))
        out.push(`${name(e)} text cut short`);
    }
    return out;
  });
}

// A box of the page, e.g. an open drawer, lies within the viewport.
async function within(page, selector) {
  return page.$eval(selector, (e) => {
    const r = e.getBoundingClientRect();
    return r.left >= -0.5 && r.top >= -0.5 && r.right <= innerWidth + 0.5 && r.bottom <= innerHeight + 0.5 && r.width > 0;
  });
}

// Records the notifications a page makes (calling the browser's own too) and how often
// it asks for permission, before its script runs.
function recordNotifications() {
  window.__notes = [];
  window.__asked = 0;
  const Real = window.Notification;
  class Recorded extends Real {
    constructor(title, options) {
      super(title, options);
      window.__notes.push({ title, body: options?.body, tag: options?.tag });
    }
  }
  Object.defineProperty(Recorded, "permission", { get: () => Real.permission });
  Recorded.requestPermission = (...args) => {
    window.__asked++;
    return Real.requestPermission(...args);
  };
  window.Notification = Recorded;
}

// Makes the page's tab hidden or visible as far as the page can tell (headless Chromium
// shows every page, so the test stands in for the user switching tabs).
async function setHidden(page, hidden) {
  await page.evaluate((hidden) => {
    if (hidden) {
      Object.defineProperty(document, "visibilityState", { configurable: true, get: () => "hidden" });
      Object.defineProperty(document, "hidden", { configurable: true, get: () => true });
    } else {
      delete document.visibilityState;
      delete document.hidden;
    }
    document.dispatchEvent(new Event("visibilitychange"));
  }, hidden);
}

// A token signed with the Ed25519 key in `keyFile` (switchboard keygen --for tokens:
// base64 of the seed, then the public key), as a JWT library would make it: for the
// expired one, which `switchboard token` cannot make.
function signToken(keyFile, claims) {
  const seed = Buffer.from(readFileSync(keyFile, "utf8").trim(), "base64").subarray(0, 32);
  const der = Buffer.concat([Buffer.from("302e020100300506032b657004220420", "hex"), seed]);
  return signWith(createPrivateKey({ key: der, format: "der", type: "pkcs8" }), claims);
}

function signWith(key, claims) {
  const part = (o) => Buffer.from(JSON.stringify(o)).toString("base64url");
  const input = `${part({ alg: "EdDSA", typ: "JWT" })}.${part(claims)}`;
  return `${input}.${sign(null, Buffer.from(input), key).toString("base64url")}`;
}

const node = await startNode(binary, webDir);
const browser = await launch();
const failures = [];
try {
  // A page of `user`'s in a new browser context, or a second tab in `context`.
  const open = async (user, { context = null, hash = "", phone = false, room = "lobby" } = {}) => {
    const page = await (context ?? await browser.newContext()).newPage();
    watch(page, user, (text) => failures.push(text));
    if (phone) await page.setViewportSize({ width: 390, height: 780 });
    await page.goto(`${node.http}?user=${user}&room=${room}${hash}`);
    await until(page, (u) => document.getElementById("status").textContent === `connected as ${u}`, user);
    return page;
  };
  const ann = await open("ann");
  const bob = await open("bob");

  // Presence: each sees both.
  for (const page of [ann, bob])
    for (const user of ["ann", "bob"]) await page.waitForSelector(`#who li[data-user="${user}"]`);

  // Typing indicator (bob's first keystrokes: notices go at most every 2 s), within a second.
  const typed = Date.now();
  await bob.type("#text", "typ");
  await until(ann, () => document.getElementById("typing").textContent.includes("bob is typing"), null);
  const typingMs = Date.now() - typed;
  console.log(`typing notice shown ${typingMs} ms after the first keystroke`);
  assert.ok(typingMs < 1000, "the typing notice shows within a second");
  await bob.fill("#text", "");

  // Typed in one page, shown in the other, in order; each user's own are marked theirs.
  const sent = ["hello bob", "are you there?", "third message"];
  for (const text of sent) await send(ann, text);
  assertOrderedOnce(await waitForMessages(bob, 3), sent, "bob");
  await send(bob, "yes, here");
  sent.push("yes, here");
  assertOrderedOnce(await waitForMessages(ann, 4), sent, "ann");
  assert.deepEqual((await messages(ann)).map((m) => m.mine), [true, true, true, false], "ann's own are marked");
  assert.deepEqual((await messages(bob)).map((m) => m.mine), [false, false, false, true], "bob's own are marked");

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

  // Statuses: ann sets hers; bob's Online list shows it.
  await ann.selectOption("#my-status", "away");
  await ann.fill("#my-status-text", "at lunch");
  await ann.click("#status-form button");
  await until(bob, () => {
    const li = document.querySelector('#who li[data-user="ann"]');
    return li?.className === "away" && li.textContent === "ann (at lunch)";
  }, null);
  await ann.selectOption("#my-status", "busy");
  await ann.fill("#my-status-text", "");
  await ann.click("#status-form button");
  await until(bob, () => {
    const li = document.querySelector('#who li[data-user="ann"]');
    return li?.className === "busy" && li.textContent === "ann";
  }, null);

  // Links: http(s) only, opening elsewhere without the opener; the body stays its text.
  const linky = 'docs at https://example.com/a?q=1&r=2. Not javascript:alert(1), nor <a href="https://evil.example/x">this</a> (see http://example.org/b_(c))';
  await send(bob, linky);
  sent.push(linky);
  assertOrderedOnce(await waitForMessages(ann, 8), sent, "ann");
  const links = await ann.$$eval("#messages li[data-seq='8'] .body a", (as) => as.map((a) => ({
    href: a.getAttribute("href"), text: a.textContent, rel: a.rel, target: a.target,
  })));
  const external = { rel: "noopener noreferrer", target: "_blank" };
  assert.deepEqual(links, [
    { href: "https://example.com/a?q=1&r=2", text: "https://example.com/a?q=1&r=2", ...external },
    { href: "https://evil.example/x", text: "https://evil.example/x", ...external },
    { href: "http://example.org/b_(c)", text: "http://example.org/b_(c)", ...external },
  ], "the http(s) links, and only them");

  // Markup in a body and in a room name is shown as text, never run.
  await send(bob, XSS);
  sent.push(XSS);
  assertOrderedOnce(await waitForMessages(ann, 9), sent, "ann, with markup as text");
  await bob.fill("#new-room", XSS);
  await bob.click('#room-form button[value="create"]');
  await waitForRoom(bob, XSS, 0);
  await send(bob, XSS);
  await ann.evaluate((name) => { location.hash = `#${encodeURIComponent(name)}`; }, XSS);
  assert.deepEqual((await waitForRoom(ann, XSS, 1)).map((m) => m.body), [XSS]);
  for (const page of [ann, bob]) {
    assert.equal(await page.evaluate((name) => document.querySelector(`#rooms li[data-room="${CSS.escape(name)}"] .name`).textContent, XSS), `# ${XSS}`);
    assert.equal(await page.textContent("#room-title"), `# ${XSS}`);
    assert.equal(await page.evaluate(() => document.querySelectorAll("img").length), 0, "no element made of the markup");
    assert.equal(await page.evaluate(() => window.__pwned), undefined, "no script of the markup ran");
  }
  await ann.click('#rooms a[href="#lobby"]');
  await bob.click('#rooms a[href="#lobby"]');
  await waitForRoom(ann, "lobby", 9);
  await waitForRoom(bob, "lobby", 9);

  // A private room ann is not in: opening it says so, and she cannot write there.
  await cli(node, "room", "create", "--room", "vault", "--user", "bob", "--private");
  await ann.evaluate(() => { location.hash = "#vault"; });
  await until(ann, () => document.getElementById("room-title").textContent === "# vault" &&
    document.querySelector("#messages li.blocked"), null);
  assert.match(await ann.textContent("#messages li.blocked"), /You cannot open #vault: .*private and you are not one of its members/);
  assert.equal(await ann.isDisabled("#text"), true, "no writing in a room one cannot open");
  assert.equal(await ann.isDisabled("#send"), true);
  await ann.click('#rooms a[href="#lobby"]');
  assertOrderedOnce(await waitForRoom(ann, "lobby", 9), sent, "ann back in the lobby");
  assert.equal(await ann.isDisabled("#text"), false, "writing again in the lobby");

  // Rooms. bob creates one from the room list: it opens, and the address names it.
  await bob.fill("#new-room", "side");
  await bob.click('#room-form button[value="create"]');
  await waitForRoom(bob, "side", 0);
  // ann joins it by name, then goes back to the lobby by its link: the lobby shows as it was.
  await ann.fill("#new-room", "side");
  await ann.click('#room-form button[value="join"]');
  await waitForRoom(ann, "side", 0);
  await ann.click('#rooms a[href="#lobby"]');
  assertOrderedOnce(await waitForRoom(ann, "lobby", 9), sent, "ann back in the lobby");
  await ann.waitForSelector('#who li[data-user="bob"]');

  // A second tab of ann's, phone-sized, in the lobby.
  const ann2 = await open("ann", { context: ann.context(), phone: true });
  await waitForRoom(ann2, "lobby", 9);
  assert.deepEqual(await roomOrder(ann2), ["side", XSS, "lobby"], "newest activity first (side was created last)");

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
  await waitForRoom(ann, "lobby", 9);
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

  // At 390 px the room list and the Online list are drawers; the header's buttons, the
  // conversation and the compose box fit, nothing cut off.
  assert.equal(await ann2.textContent("#rooms-total"), "3", "the drawer's button shows the unread total");
  assert.equal(await ann2.isVisible('#rooms a[href="#side"]'), false, "the room list is folded at 390 px");
  assert.equal(await ann2.isVisible('#who li[data-user="bob"]'), false, "the Online list is folded at 390 px");
  for (const selector of ["#rooms-toggle", "#online-toggle", "#text", "#send", "#scroller"])
    assert.ok(await ann2.isVisible(selector) && await within(ann2, selector), `${selector} in view at 390 px`);
  assert.deepEqual(await cutOff(ann2), [], "nothing cut off at 390 px");
  await ann2.click("#rooms-toggle");
  await ann2.waitForSelector('#rooms a[href="#side"]', { state: "visible" });
  assert.ok(await within(ann2, "#rooms-nav"), "the room drawer fits the viewport");
  assert.deepEqual(await cutOff(ann2), [], "nothing cut off in the room drawer");
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

  // Who is online, statuses and typing work in the phone-sized tab.
  await ann2.click("#online-toggle");
  for (const user of ["ann", "bob"]) await ann2.waitForSelector(`#who li[data-user="${user}"]`);
  assert.ok(await within(ann2, "#online"), "the Online drawer fits the viewport");
  assert.ok(await ann2.isVisible("#status-form button") && await within(ann2, "#status-form button"), "its status form too");
  assert.deepEqual(await cutOff(ann2), [], "nothing cut off in the Online drawer");
  await ann2.screenshot({ path: join(outDir, "chat_page_narrow_online.png") });
  await ann2.click("#online-close");
  await ann2.waitForSelector("#online", { state: "hidden" });
  await ann2.type("#text", "typ");  // ann's first keystrokes in this tab
  await until(bob, () => document.getElementById("typing").textContent.includes("ann is typing"), null);
  await ann2.fill("#text", "");

  await ann.bringToFront();  // a tab is drawn only in front of its window
  await ann.screenshot({ path: join(outDir, "chat_page.png"), fullPage: true });

  // A link names a room: it opens there, with no divider once everything is read.
  const ann3 = await open("ann", { hash: "#side" });
  assertOrderedOnce(await waitForRoom(ann3, "side", 5), side, "ann opening side by its link");
  assert.equal(await divider(ann3), null, "no divider when nothing is unread");

  // Private rooms and membership. ann makes "commons" from the room form as it was, and
  // "den" with Private ticked: she is the owner of both, so she is offered Add member.
  await createRoom(ann, "commons");
  await createRoom(ann, "den", { hidden: true });
  assert.equal(await ann.isChecked("#new-private"), false, "Private is unticked once the room is made");
  // Her room list marks the private one (the node's summaries say which is).
  await until(ann, () => document.querySelector('#rooms li[data-room="den"] .name')?.textContent === "🔒 den", null);
  assert.equal(await ann.textContent('#rooms li[data-room="commons"] .name'), "# commons", "a public room is not marked");
  assert.equal(await ann.isVisible("#add-open"), true, "an owner is offered Add member");
  assert.equal(await ann.isVisible("#leave"), true, "and Leave");
  await ann.waitForSelector('#members li[data-user="ann"]');
  assert.deepEqual(await memberList(ann), [["ann", "owner"]]);
  await send(ann, "welcome to the den");

  // bob's room form offers him the public room to join, not the private one; joining
  // den by name, or opening its link, says he cannot, and offers nothing to leave or add.
  // (The list is asked for as the field gets the focus: both rooms were made before.)
  await bob.focus("#new-room");
  await until(bob, () => [...document.querySelectorAll("#room-names option")].some((o) => o.value === "commons"), null);
  const offered = await bob.$$eval("#room-names option", (os) => os.map((o) => o.value));
  assert.ok(!offered.includes("den"), `rooms to join: not den (${offered})`);
  assert.ok(!offered.includes("lobby"), "nor a room of his list");
  await bob.fill("#new-room", "den");
  await bob.click('#room-form button[value="join"]');
  await until(bob, () => document.getElementById("room-error").textContent !== "", null);
  assert.match(await bob.textContent("#room-error"), /^You cannot join #den: there is no such room, or it is private/);
  await bob.fill("#new-room", "");
  await bob.evaluate(() => { location.hash = "#den"; });
  await until(bob, () => document.getElementById("room-title").textContent === "# den" &&
    document.querySelector("#messages li.blocked"), null);
  assert.match(await bob.textContent("#messages li.blocked"), /You cannot open #den: .*private and you are not one of its members/);
  assert.equal(await bob.isVisible("#leave"), false, "nothing to leave");
  assert.equal(await bob.isVisible("#add-open"), false, "nobody to add");
  assert.ok(!(await roomOrder(bob)).includes("den"), "den is not in bob's room list");

  // ann adds bob, and a name made of markup (the node takes any name): each is said so,
  // as text, and shows in her member list; adding bob again says he is in already.
  await addMember(ann, "bob", "bob is now a member of #den: they can open it.");
  await addMember(ann, "bob", "bob is a member of #den already.");
  await addMember(ann, XSS, `${XSS} is now a member of #den: they can open it.`);
  await until(ann, () => document.querySelectorAll("#members li").length === 3, null);
  assert.deepEqual(await memberList(ann), [[XSS, "member"], ["ann", "owner"], ["bob", "member"]]);
  assert.equal(await ann.evaluate(() => document.querySelectorAll("img").length), 0, "no element made of the markup");
  assert.equal(await ann.evaluate(() => window.__pwned), undefined, "no script of the markup ran");

  // bob tries again: den opens, with ann's message; he may write, not add members.
  await bob.click("#messages li.blocked button");
  assert.deepEqual((await waitForRoom(bob, "den", 1)).map((m) => [m.user, m.body]), [["ann", "welcome to the den"]]);
  assert.ok((await roomOrder(bob)).includes("den"), "den is in bob's room list");
  assert.equal(await bob.isVisible("#add-open"), false, "a member who is no owner is not offered Add member");
  assert.equal(await bob.isVisible("#leave"), true);
  await send(bob, "glad to be here");
  assert.deepEqual((await waitForMessages(ann, 2)).map((m) => m.body), ["welcome to the den", "glad to be here"]);
  await ann.waitForSelector('#who li[data-user="bob"]');

  // ann cannot leave: she is den's last owner and others are in it. The page says so and
  // offers no leave; the node would refuse it too (a leave sent all the same).
  await ann.click("#leave");
  await ann.waitForSelector("#leave-confirm", { state: "visible" });
  assert.equal(await ann.textContent("#leave-question"),
    "You are the last owner of #den: a room keeps an owner while others are in it, so you cannot leave it now.");
  assert.equal(await ann.isVisible("#leave-yes"), false, "no leave offered");
  await ann.click("#leave-no");
  await ann.waitForSelector("#leave-confirm", { state: "hidden" });
  await ann.evaluate(() => document.getElementById("leave-yes").click());  // as if the page's list were stale
  await until(ann, () => document.getElementById("room-note").textContent.startsWith("You cannot leave #den: you are its last owner"), null);
  assert.equal(await ann.evaluate(() => state.room), "den");
  assert.ok((await roomOrder(ann)).includes("den"));

  // bob leaves den: Stay keeps him in; Leave takes it from his list and opens his room of
  // newest activity (side), address and all. ann's Online and member lists lose him.
  await bob.click("#leave");
  assert.match(await bob.textContent("#leave-question"), /^Leave #den\? You will no longer get its messages\./);
  await bob.click("#leave-no");
  await bob.waitForSelector("#leave-confirm", { state: "hidden" });
  assert.equal(await bob.evaluate(() => state.room), "den", "Stay leaves nothing");
  assert.ok((await roomOrder(bob)).includes("den"));
  await bob.click("#leave");
  await bob.click("#leave-yes");
  assertOrderedOnce(await waitForRoom(bob, "side", 5), side, "bob back in side");
  assert.ok(!(await roomOrder(bob)).includes("den"), "den is gone from bob's room list");
  await until(ann, () => !document.querySelector('#who li[data-user="bob"]') &&
    !document.querySelector('#members li[data-user="bob"]'), null);
  assert.deepEqual(await memberList(ann), [[XSS, "member"], ["ann", "owner"]]);
  assert.equal(await ann.isVisible('#who li[data-user="ann"]'), true, "ann still online there");
  await bob.evaluate(() => { location.hash = "#den"; });  // private again, for him
  await until(bob, () => document.getElementById("room-title").textContent === "# den" &&
    document.querySelector("#messages li.blocked"), null);
  await bob.click('#rooms a[href="#side"]');
  await waitForRoom(bob, "side", 5);

  // At 390 px, in ann's phone-sized tab: the tools of commons (hers alone), the Add
  // member form and the leave question fit, and so does the member list in the Online drawer.
  await ann2.bringToFront();  // a tab is drawn (and its clicks settle) only in front of its window
  await ann2.evaluate(() => { location.hash = "#commons"; });
  await waitForRoom(ann2, "commons", 0);
  for (const selector of ["#add-open", "#leave", "#text", "#send"])
    assert.ok(await ann2.isVisible(selector) && await within(ann2, selector), `${selector} in view at 390 px`);
  assert.deepEqual(await cutOff(ann2), [], "nothing cut off at 390 px in den");
  await ann2.click("#add-open");
  await ann2.waitForSelector("#add-user", { state: "visible" });
  for (const selector of ["#add-user", '#add-form button[type="submit"]', "#add-cancel"])
    assert.ok(await within(ann2, selector), `${selector} in view at 390 px`);
  assert.deepEqual(await cutOff(ann2), [], "nothing cut off with the Add member form open");
  await ann2.click("#add-cancel");
  await ann2.waitForSelector("#add-form", { state: "hidden" });
  await ann2.click("#leave");
  await ann2.waitForSelector("#leave-confirm", { state: "visible" });
  for (const selector of ["#leave-yes", "#leave-no"]) assert.ok(await within(ann2, selector), `${selector} in view at 390 px`);
  assert.deepEqual(await cutOff(ann2), [], "nothing cut off with the leave question");
  await ann2.screenshot({ path: join(outDir, "chat_page_narrow_leave.png") });
  await ann2.keyboard.press("Escape");  // folds the question, as it does a drawer
  await ann2.waitForSelector("#leave-confirm", { state: "hidden" });
  await ann2.click("#online-toggle");
  await ann2.waitForSelector('#members li[data-user="ann"]', { state: "visible" });
  assert.ok(await within(ann2, "#members"), "the member list in view in the Online drawer");
  assert.deepEqual(await cutOff(ann2), [], "nothing cut off in the Online drawer with members");
  await ann2.click("#online-close");
  await ann2.waitForSelector("#online", { state: "hidden" });

  // eve leaves her only room: the page goes back to the entry screen (no room in the
  // address), and entering another room from there goes on, with the name kept.
  const eve = await open("eve", { room: "eve-only" });
  await waitForRoom(eve, "eve-only", 0);
  await eve.waitForSelector('#members li[data-user="eve"]');  // the page knows she is alone there
  await eve.click("#leave");
  assert.match(await eve.textContent("#leave-question"), /^Leave #eve-only\? You are its only member/);
  await eve.click("#leave-yes");
  await eve.waitForSelector("#enter", { state: "visible" });
  assert.equal(await eve.isVisible("#chat"), false);
  assert.equal(await eve.textContent("#entry-note"), "You left #eve-only, your last room. Enter a room to go on.");
  assert.equal(await eve.evaluate(() => location.search + location.hash), "", "no room in the address");
  assert.equal(await eve.inputValue("#user"), "eve");
  await eve.fill("#room", "commons");
  await eve.click('#enter button[type="submit"]');
  await until(eve, () => document.getElementById("status").textContent === "connected as eve", null);
  await waitForRoom(eve, "commons", 0);
  assert.deepEqual(await roomOrder(eve), ["commons"], "eve-only is not hers any more");
  assert.equal(await eve.isVisible("#entry-note"), false);

  // Desktop notifications. Asked for only on a click of "Notify me".
  const asking = await browser.newContext();
  await asking.addInitScript(recordNotifications);
  const cid = await open("cid", { context: asking });
  assert.equal(await cid.isVisible("#notify"), true, "the page offers notifications");
  assert.equal(await cid.evaluate(() => window.__asked), 0, "no permission asked before the click");
  await cid.click("#notify");
  await until(cid, () => window.__asked === 1, null);
  // Granted: while the tab is hidden, a message in one of her rooms, and one naming her,
  // each make one; her unread count is in the tab's title.
  const granted = await browser.newContext({ permissions: ["notifications"] });
  await granted.addInitScript(recordNotifications);
  const dee = await open("dee", { context: granted });
  await waitForRoom(dee, "lobby", 9);
  assert.equal(await dee.isVisible("#notify"), false, "nothing to ask once granted");
  await bob.click('#rooms a[href="#lobby"]');
  await waitForRoom(bob, "lobby", 9);
  await waitForTitle(dee, "Switchboard chat");  // what she was shown is read
  await setHidden(dee, true);
  await send(bob, "anyone around?");
  await send(bob, "@dee are you?");
  await until(dee, () => window.__notes.length === 2, null);
  assert.deepEqual(await dee.evaluate(() => window.__notes), [
    { title: "bob in #lobby", body: "anyone around?", tag: "switchboard:lobby" },
    { title: "bob mentioned you in #lobby", body: "@dee are you?", tag: "switchboard:lobby" },
  ]);
  await waitForTitle(dee, "(2) Switchboard chat");
  await setHidden(dee, false);
  await send(bob, "welcome back");
  await until(dee, () => document.querySelectorAll("#messages li[data-seq]").length === 12, null);
  await waitForTitle(dee, "Switchboard chat");
  assert.equal(await dee.evaluate(() => window.__notes.length), 2, "none while the tab is shown");

  assert.deepEqual(failures, [], "no errors in the pages");

  // Signing in with a token, on a node run with --token-key: the page never asks for a
  // name, takes the token out of the address, and says why when it is refused.
  const keys = mkdtempSync(join(tmpdir(), "switchboard-browser-tokens-"));
  const tokenKey = join(keys, "tokens.key");
  execFileSync(binary, ["keygen", "--for", "tokens", "--out", tokenKey], { stdio: "ignore" });
  const tokens = await startNode(binary, webDir, { extra: ["--token-key", `${tokenKey}.pub`] });
  try {
    const signIn = async (token) => {
      const page = await (await browser.newContext()).newPage();
      watch(page, "token page", (text) => failures.push(text));
      await page.goto(`${tokens.http}#token=${token}`);
      return page;
    };
    const token = execFileSync(binary, ["token", "--user", "tia", "--ttl", "1h", "--key", tokenKey]).toString().trim();
    const tia = await signIn(token);
    await until(tia, () => document.getElementById("status").textContent === "connected as tia", null);
    assert.equal(await tia.isVisible("#enter"), false, "no name asked for");
    await send(tia, "signed in with a token");
    assert.deepEqual((await messages(tia)).map((m) => [m.user, m.body]), [["tia", "signed in with a token"]]);
    assert.ok(!(await tia.evaluate(() => location.href)).includes("token"), "the token is gone from the address");
    await tia.reload();  // kept for the tab: a reload signs in again
    await until(tia, () => document.getElementById("status").textContent === "connected as tia", null);
    assert.equal((await messages(tia)).length, 1);
    // Another link opened in the same tab signs in with its token.
    const uma = execFileSync(binary, ["token", "--user", "uma", "--ttl", "1h", "--key", tokenKey]).toString().trim();
    await tia.evaluate((t) => { location.hash = `#token=${t}`; }, uma);
    await until(tia, () => document.getElementById("status").textContent === "connected as uma", null);
    assert.ok(!(await tia.evaluate(() => location.href)).includes("token"), "that token is gone from the address too");

    const expired = await signIn(signToken(tokenKey, { sub: "tia", exp: Math.floor(Date.now() / 1000) - 60 }));
    await expired.waitForSelector("#login-error", { state: "visible" });
    assert.match(await expired.textContent("#login-error"), /^Your sign-in link has expired \(it was good until .+\)\. Ask for a new one\.$/);
    const forged = await signIn(signWith(generateKeyPairSync("ed25519").privateKey, { sub: "tia", exp: Math.floor(Date.now() / 1000) + 600 }));
    await forged.waitForSelector("#login-error", { state: "visible" });
    assert.match(await forged.textContent("#login-error"), /^Your sign-in link was refused: .*signature does not verify/);
    for (const page of [expired, forged]) {
      assert.equal(await page.isVisible("#enter"), false, "no name asked for instead");
      assert.equal(await page.isVisible("#chat"), false);
      assert.equal(await page.textContent("#status"), "not signed in");
      assert.ok(!(await page.evaluate(() => location.href)).includes("token"), "the token is gone from the address");
    }
    // A name on such a node: it says a token is needed.
    const named = await (await browser.newContext()).newPage();
    await named.goto(`${tokens.http}?user=tia&room=general`);
    await named.waitForSelector("#login-error", { state: "visible" });
    assert.match(await named.textContent("#login-error"), /signs users in with a link that carries a token/);
  } finally {
    await stopNode(tokens);
    rmSync(keys, { recursive: true, force: true });
  }

  // The same page over https://, speaking wss:// to a bridge with a certificate (a
  // self-signed one, so this browser context is told to accept it).
  const certs = mkdtempSync(join(tmpdir(), "switchboard-browser-tls-"));
  execFileSync("openssl", ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
    "-days", "2", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
    "-keyout", join(certs, "bridge.key"), "-out", join(certs, "bridge.crt")], { stdio: "ignore" });
  const secure = await startNode(binary, webDir, { extra: ["--bridge-cert", join(certs, "bridge.crt"), "--bridge-key", join(certs, "bridge.key")] });
  try {
    assert.match(secure.http, /^https:\/\//);
    const page = await (await browser.newContext({ ignoreHTTPSErrors: true })).newPage();
    watch(page, "tls page", (text) => failures.push(text));
    await page.goto(`${secure.http}?user=dee&room=vault`);
    await until(page, () => document.getElementById("status").textContent === "connected as dee", null);
    assert.match(await page.evaluate(() => state.ws.url), /^wss:\/\//);
    await send(page, "over tls");
    assertOrderedOnce(await waitForMessages(page, 1), ["over tls"], "dee over wss");
  } finally {
    await stopNode(secure);
    rmSync(certs, { recursive: true, force: true });
  }
  assert.deepEqual(failures, [], "no errors in the pages");
  console.log(`chat page: ok (ws and wss, token sign-in); screenshots in ${outDir}`);
} finally {
  await browser.close();
  await stopNode(node);
}
