// The web chat page's history and sending, end to end: a real node, its bridge, and
// pages in headless Chromium (Debian's chromium, driven by playwright-core).
//
// - Scrolling back through 500 messages: each page lands above without moving what is
//   on screen, the messages shown are always consecutive, once each, with one day
//   separator; all 500 are seen; "jump to latest" brings back the newest, with the
//   messages that arrived meanwhile.
// - Room switches: the time from the click until the room's newest page is painted.
// - Scrolling back through 10 000 messages: the number of messages kept in the page
//   (checked), and long tasks (PerformanceObserver 'longtask') and frame gaps while it
//   scrolls (printed).
// - A message written while the node is down is shown as queued, and is stored once
//   after the node is back (restarted on the same data and ports).
// - A message written while the node is stalled (SIGSTOP) shows as pending, then as
//   failed; Retry sends it again with the same cmid, and the node stores it once.
// - The page's script and style: their size, and nothing fetched from elsewhere.
//
// Usage: node chat_history_test.mjs SWITCHBOARD_BINARY WEB_DIR OUT_DIR
// Prints the figures; saves OUT_DIR/chat_history.png. Every wait is on something the
// page shows, with a deadline; nothing sleeps in place of synchronisation.
import assert from "node:assert/strict";
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import {
  startNode, stopNode, cli, launch, until, eventually, watch, recordPublishes, shownMessages, publishMany, storedHistory,
} from "./harness.mjs";

const [binary, webDir, outDir] = process.argv.slice(2);
const WINDOW_MAX = 400;  // examples/web/app.js: messages the page keeps at most
// The publisher sends 10 000 messages as fast as the node takes them: no rate limits.
const NO_LIMITS = ["--limit", "publish_per_s=0", "--limit", "requests_per_s=0"];
const range = (from, to) => Array.from({ length: to - from + 1 }, (_, i) => from + i);
const SMALL = ["s1", "s2", "s3"];

function assertPage(list, from, to, body, what) {
  assert.deepEqual(list.map((m) => m.seq), range(from, to), `${what}: seqs ${from}..${to}, in order, once each`);
  assert.deepEqual(list.map((m) => m.body), range(from, to).map(body), `${what}: each message's own body`);
}

// Scrolls the open room up a step per frame until its first message shows, checking
// at each change of the list that it holds consecutive messages, each with its own
// body (`prefix` + seq), under exactly one day separator (they are all of today).
// Returns what it saw and measured: long tasks, the longest gap between frames.
async function scrollToStart(page, prefix, step) {
  return page.evaluate(async ([prefix, step]) => {
    const s = document.getElementById("scroller");
    const list = document.getElementById("messages");
    const seen = new Set();
    const problems = [];
    let most = 0;
    let changes = 0;
    const check = () => {
      const items = list.querySelectorAll("li.msg");
      most = Math.max(most, items.length);
      let previous = null;
      for (const li of items) {
        const seq = Number(li.dataset.seq);
        if (previous !== null && seq !== previous + 1) problems.push(`${previous} then ${seq}`);
        if (li.querySelector(".body").textContent !== `${prefix}${seq}`) problems.push(`seq ${seq} has another body`);
        seen.add(seq);
        previous = seq;
      }
      const days = list.querySelectorAll("li.day");
      if (days.length !== 1 || days[0].compareDocumentPosition(items[0]) !== Node.DOCUMENT_POSITION_FOLLOWING)
        problems.push(`${days.length} day separators, or not above the first message`);
    };
    const longTasks = [];
    const observer = new PerformanceObserver((l) => longTasks.push(...l.getEntries().map((e) => e.duration)));
    observer.observe({ type: "longtask" });
    const started = performance.now();
    let lastFrame = started;
    let longestFrame = 0;
    let key = "";
    while (performance.now() - started < 60_000) {
      s.scrollTop = Math.max(0, s.scrollTop - step);
      await new Promise((resolve) => requestAnimationFrame(resolve));
      const now = performance.now();
      longestFrame = Math.max(longestFrame, now - lastFrame);
      lastFrame = now;
      const now_key = `${list.querySelector("li.msg")?.dataset.seq}/${list.children.length}`;
      if (now_key !== key) {
        key = now_key;
        changes++;
        check();
      }
      if (s.scrollTop === 0 && list.querySelector(".start")) break;
    }
    const elapsed = performance.now() - started;
    await new Promise((resolve) => setTimeout(resolve, 0));  // the observer's last entries
    observer.disconnect();
    const sorted = [...seen].sort((a, b) => a - b);
    return {
      problems: problems.slice(0, 10), seen: sorted.length, min: sorted[0], max: sorted.at(-1), most, changes,
      elapsed, longestFrame, longTasks, first: Number(list.querySelector("li.msg").dataset.seq),
      start: list.querySelector(".start")?.textContent ?? null,
    };
  }, [prefix, step]);
}

// Scrolls the open room down a step per frame until `last` shows at the bottom,
// checking at each change of the list that it holds consecutive messages with their
// bodies (`body(seq)`). Returns the problems seen.
async function scrollToEnd(page, last, bodies) {
  return page.evaluate(async ([last, bodies]) => {
    const s = document.getElementById("scroller");
    const list = document.getElementById("messages");
    const problems = [];
    const started = performance.now();
    let key = "";
    while (performance.now() - started < 20_000) {
      s.scrollTop += 1000;
      await new Promise((resolve) => requestAnimationFrame(resolve));
      const items = [...list.querySelectorAll("li.msg")];
      const now = `${items[0]?.dataset.seq}/${items.length}`;
      if (now !== key) {
        key = now;
        items.forEach((li, i) => {
          const seq = Number(li.dataset.seq);
          if (i && seq !== Number(items[i - 1].dataset.seq) + 1) problems.push(`${items[i - 1].dataset.seq} then ${seq}`);
          if (li.querySelector(".body").textContent !== bodies[seq]) problems.push(`seq ${seq} has another body`);
        });
      }
      if (items.at(-1)?.dataset.seq === String(last) && s.scrollHeight - s.scrollTop - s.clientHeight < 8) return problems;
    }
    return [...problems, "did not reach the newest message"];
  }, [last, bodies]);
}

// Clicks `room` in the room list. Returns the times until its newest messages (up to
// `last`) are painted, and until the view is full (the messages above fill it: as many
// as `full`, or the room's start).
async function timeSwitch(page, room, last, full) {
  return page.evaluate(async ([room, last, full]) => {
    const list = document.getElementById("messages");
    const painted = () => new Promise((resolve) => requestAnimationFrame(() => setTimeout(resolve, 0)));
    const when = (done) => new Promise((resolve, reject) => {
      if (done()) return resolve();
      const observer = new MutationObserver(() => {
        if (!done()) return;
        observer.disconnect();
        clearTimeout(timer);
        resolve();
      });
      observer.observe(list, { childList: true });
      const timer = setTimeout(() => {
        observer.disconnect();
        const seqs = [...list.querySelectorAll("li.msg")].map((li) => li.dataset.seq);
        reject(new Error(`switching to ${room}: the page shows ${state.room}, ${seqs.length} messages ` +
          `(${seqs[0]}..${seqs.at(-1)}), loading ${state.loading}`));
      }, 20_000);
    });
    const started = performance.now();
    document.querySelector(`#rooms li[data-room="${room}"] a`).click();
    await when(() => state.room === room && list.querySelector(`li.msg[data-seq="${last}"]`));
    await painted();
    const newest = performance.now() - started;
    await when(() => state.room === room && (list.querySelectorAll("li.msg").length >= full || list.querySelector(".start")));
    await painted();
    return { newest, full: performance.now() - started };
  }, [room, last, full]);
}

// The open room is loaded and its view is full: `count` messages or more, or its start.
const settled = ([room, count]) => state.room === room && !state.loading &&
  (document.querySelectorAll("#messages li.msg").length >= count || document.querySelector("#messages .start"));

const atBottom = () => {
  const s = document.getElementById("scroller");
  return s.scrollHeight - s.scrollTop - s.clientHeight < 8;
};

let node = await startNode(binary, webDir, { extra: NO_LIMITS });
const browser = await launch();
const failures = [];
try {
  // carl writes, from a page of his own on the bridge's origin.
  const carl = await (await browser.newContext()).newPage();
  await carl.goto(node.http);
  assert.deepEqual(await publishMany(carl, { user: "carl", room: "five", count: 500, prefix: "f" }), range(1, 500));
  assert.deepEqual(await publishMany(carl, { user: "carl", room: "big", count: 10_000, prefix: "b" }), range(1, 10_000));
  assert.deepEqual(await publishMany(carl, { user: "carl", room: "small", count: 3, prefix: "s" }), range(1, 3));

  // dora reads, 1280 x 720. Her page fetches only from the node.
  const dora = await (await browser.newContext({ viewport: { width: 1280, height: 720 } })).newPage();
  watch(dora, "dora", (text) => failures.push(text));
  const fetched = [];
  dora.on("response", (r) => fetched.push(r));
  const publishes = recordPublishes(dora);
  await dora.goto(`${node.http}?user=dora&room=small#five`);
  await until(dora, () => document.getElementById("status").textContent === "connected as dora", null);

  // ---- 500 messages, scrolled back. She just joined five: it opens at its newest page.
  await until(dora, settled, ["five", 100]);
  let list = await shownMessages(dora);
  assertPage(list, list[0].seq, 500, (n) => `f${n}`, "five's newest messages");
  await until(dora, atBottom, null);
  assert.equal(await dora.isVisible("#jump"), false, "no jump button at the newest message");
  assert.equal(await dora.textContent("#messages li.day"), "Today", "a day separator above today's messages");

  // The first page up: the message at the top of the view stays where it was.
  const kept = await dora.evaluate(async () => {
    const s = document.getElementById("scroller");
    s.scrollTop = 0;
    const top = document.querySelector("#messages li.msg");
    const before = top.getBoundingClientRect().top;
    await new Promise((resolve) => {
      const observer = new MutationObserver(() => {
        if (document.querySelector("#messages li.msg") === top) return;
        observer.disconnect();
        resolve();
      });
      observer.observe(document.getElementById("messages"), { childList: true });
    });
    return { seq: Number(top.dataset.seq), moved: top.getBoundingClientRect().top - before, scrollTop: s.scrollTop };
  });
  assert.equal(kept.seq, list[0].seq);
  assert.ok(Math.abs(kept.moved) <= 1, `the message on screen stays put as a page lands above it (moved ${kept.moved} px)`);
  assert.ok(kept.scrollTop > 0, "the view is no longer at the top of the list");

  const five = await scrollToStart(dora, "f", 400);
  assert.deepEqual(five.problems, [], "always consecutive messages, each once, with their bodies, under one separator");
  assert.deepEqual([five.seen, five.min, five.max], [500, 1, 500], "every message of 1..500 was shown");
  assert.equal(five.first, 1);
  assert.equal(five.start, "This is the start of #five.");
  assert.ok(five.most <= WINDOW_MAX, `the page kept at most ${WINDOW_MAX} messages (${five.most})`);

  // Two arrive while she reads the start: the jump button counts them and brings her
  // to the newest messages, these two included.
  await until(dora, () => !document.getElementById("jump").hidden, null);
  await publishMany(carl, { user: "carl", room: "five", count: 2, prefix: "new" });
  await until(dora, () => document.getElementById("jump").textContent === "↓ 2 new", null);
  await dora.click("#jump");
  await until(dora, () => document.querySelector("#messages li.msg:last-of-type")?.dataset.seq === "502", null);
  await until(dora, atBottom, null);
  await until(dora, settled, ["five", 100]);
  list = await shownMessages(dora);
  assertPage(list, list[0].seq, 502, (n) => (n > 500 ? `new${n - 500}` : `f${n}`), "five after the jump");
  await until(dora, () => document.getElementById("jump").hidden, null);
  mkdirSync(outDir, { recursive: true });
  await dora.screenshot({ path: join(outDir, "chat_history.png") });

  // ---- Room switches. She joins big (opening at its newest page) and goes to small.
  await dora.evaluate(() => { location.hash = "#big"; });
  await until(dora, () => state.room === "big" && document.querySelector('#messages li.msg[data-seq="10000"]'), null);
  await dora.click('#rooms li[data-room="small"] a');
  await until(dora, () => state.room === "small" && document.querySelectorAll("#messages li.msg").length === 3, null);
  const newest = [];
  const full = [];
  for (let round = 0; round < 3; round++) {
    for (const [room, last] of [["big", 10_000], ["five", 502], ["small", 3]]) {
      // Measured from a quiet page: with a reply still on its way the bridge may hold the
      // next one back some 40 ms (its sockets have Nagle's algorithm on).
      await until(dora, () => state.waiting.size === 0, null);
      const times = await timeSwitch(dora, room, last, 100);
      newest.push(Math.round(times.newest));
      full.push(Math.round(times.full));
      await until(dora, settled, [room, 100]);
      list = await shownMessages(dora);
      const body = { big: (n) => `b${n}`, five: (n) => (n > 500 ? `new${n - 500}` : `f${n}`), small: (n) => SMALL[n - 1] }[room];
      assertPage(list, list[0].seq, last, body, `${room} after the switch`);
      await until(dora, atBottom, null);
    }
  }
  console.log(`room switch, click to newest messages painted (ms): ${newest.join(" ")}; max ${Math.max(...newest)}`);
  console.log(`room switch, click to a full view (100 messages) painted (ms): ${full.join(" ")}; max ${Math.max(...full)}`);
  assert.ok(Math.max(...newest) <= 100, "every room switch shows the newest messages within 100 ms");

  // ---- Many unread: 150 arrive in five while she is elsewhere. Five opens at her read
  // marker, under the "new messages" divider; reading down to the newest marks it read.
  await publishMany(carl, { user: "carl", room: "five", count: 150, prefix: "late" });
  await until(dora, () => document.querySelector('#rooms li[data-room="five"] .badge')?.textContent === "150", null);
  await until(dora, () => document.title === "(150) Switchboard chat", null);
  await dora.click('#rooms li[data-room="five"] a');
  await until(dora, () => state.room === "five" && document.querySelector("#messages .divider") &&
    !document.getElementById("jump").hidden, null);  // a way to the newest, 150 below
  const around = await dora.evaluate(() => {
    const d = document.querySelector("#messages .divider");
    const box = document.getElementById("scroller").getBoundingClientRect();
    const r = d.getBoundingClientRect();
    return { before: Number(d.previousElementSibling?.dataset.seq), after: Number(d.nextElementSibling?.dataset.seq),
      inView: r.top >= box.top && r.bottom <= box.bottom };
  });
  assert.deepEqual(around, { before: 502, after: 503, inView: true }, "the divider at her read marker, in view");
  const fiveBodies = [null, ...range(1, 652).map((n) => (n > 502 ? `late${n - 502}` : n > 500 ? `new${n - 500}` : `f${n}`))];
  assert.deepEqual(await scrollToEnd(dora, 652, fiveBodies), [], "consecutive messages down to the newest");
  await until(dora, () => document.querySelector('#rooms li[data-room="five"] .badge').hidden &&
    document.title === "Switchboard chat", null);

  // ---- 10 000 messages, scrolled back to the first.
  await dora.click('#rooms li[data-room="big"] a');
  await until(dora, settled, ["big", 100]);
  await until(dora, atBottom, null);
  const big = await scrollToStart(dora, "b", 1000);
  const longest = big.longTasks.length ? Math.max(...big.longTasks) : 0;
  console.log(`scrolled back through 10000 messages in ${(big.elapsed / 1000).toFixed(1)} s: ${big.changes} pages, ` +
    `${big.longTasks.length} long tasks (> 50 ms)${big.longTasks.length ? `, longest ${longest.toFixed(0)} ms` : ""}, ` +
    `longest frame gap ${big.longestFrame.toFixed(0)} ms, at most ${big.most} messages in the page`);
  assert.deepEqual(big.problems, [], "always consecutive messages, each once, with their bodies, under one separator");
  assert.deepEqual([big.seen, big.min, big.max], [10_000, 1, 10_000], "every message of 1..10000 was shown");
  assert.ok(big.most <= WINDOW_MAX, `the page kept at most ${WINDOW_MAX} messages (${big.most})`);
  // The long tasks and frame gaps are figures, printed above, not a check: on a busy
  // machine (this test beside the failover tests, two browsers and six nodes on two
  // cores) the page's tasks run as long as the CPU it is given, and a check of them
  // failed there (15 tasks, the longest 455 ms) while the page did no more work. What
  // keeps scrolling cheap is checked above: the page holds at most WINDOW_MAX messages.

  // ---- A message written while the node is down: queued, then stored once.
  await dora.click('#rooms li[data-room="small"] a');
  await until(dora, () => state.room === "small" && document.querySelectorAll("#messages li.msg").length === 3, null);
  await dora.waitForSelector('#who li[data-user="dora"]');
  assert.equal(await dora.isVisible("#who-note"), false, "the Online list is current while connected");
  await stopNode(node, { keepData: true });
  await until(dora, () => document.getElementById("status").textContent.includes("reconnecting"), null);
  assert.ok(await dora.evaluate(() => document.getElementById("online").classList.contains("stale")),
    "the Online list is marked stale while disconnected");
  assert.match(await dora.textContent("#who-note"), /Not up to date/);
  const down = ["written while the node was down", "and a second one"];
  for (const text of down) {
    await dora.fill("#text", text);
    await dora.press("#text", "Enter");
    assert.equal(await dora.inputValue("#text"), "", "the compose box is free for the next one");
  }
  await until(dora, () => document.querySelectorAll("#outbox li.queued").length === 2, null);
  assert.deepEqual(await dora.$$eval("#outbox li.queued", (items) => items.map((li) =>
    [li.querySelector(".body").textContent, li.querySelector(".state").textContent])),
  down.map((text) => [text, "queued: sent once the connection is back"]), "shown as queued, in order");
  assert.equal(publishes.filter((p) => down.includes(p.body)).length, 0, "nothing sent while disconnected");
  node = await startNode(binary, webDir, { again: node });
  await until(dora, (t) => document.querySelectorAll("#outbox li").length === 0 &&
    [...document.querySelectorAll("#messages li.msg .body")].some((b) => b.textContent === t), down[1]);
  await until(dora, () => document.getElementById("status").textContent === "connected as dora", null);
  assertPage(await shownMessages(dora), 1, 5, (n) => [...SMALL, ...down][n - 1], "small after the restart");
  await eventually(() => publishes.filter((p) => down.includes(p.body)).length >= 2, "the queued messages' frames");
  const sentDown = publishes.filter((p) => down.includes(p.body));
  assert.deepEqual(sentDown.map((p) => p.body), down, "each sent once, in order, on the reconnect");
  let stored = await storedHistory(node, "small");
  assert.deepEqual(stored.map((m) => m.body), [...SMALL, ...down], "each stored once, after the others");
  assert.deepEqual(stored.slice(3).map((m) => m.cmid), sentDown.map((p) => p.cmid));
  await until(dora, () => !document.getElementById("online").classList.contains("stale") &&
    document.querySelector('#who li[data-user="dora"]'), null);
  assert.equal(await dora.isVisible("#who-note"), false, "the Online list is current again");

  // ---- A message written while the node is stalled: pending, failed, retried with the
  // same cmid; both sends reach the node once it runs again, and it stores one.
  node.proc.kill("SIGSTOP");
  const stalled = "written while the node was stalled";
  await dora.fill("#text", stalled);
  await dora.press("#text", "Enter");
  await dora.waitForSelector("#outbox li.pending");
  assert.equal(await dora.textContent("#outbox li.pending .state"), "sending…", "shown as being sent");
  await dora.waitForSelector("#outbox li.failed", { timeout: 20_000 });  // no answer in 10 s
  assert.equal(await dora.textContent("#outbox li.failed .state"), "not sent: no answer from the node");
  await dora.click("#outbox li.failed .retry");
  await dora.waitForSelector("#outbox li.pending");
  await eventually(() => publishes.filter((p) => p.body === stalled).length === 2, "the retry's frame");
  const sentStalled = publishes.filter((p) => p.body === stalled);
  assert.equal(sentStalled.length, 2, "sent, then sent again by Retry");
  assert.equal(sentStalled[1].cmid, sentStalled[0].cmid, "the retry has the same cmid");
  node.proc.kill("SIGCONT");
  await until(dora, (t) => document.querySelectorAll("#outbox li").length === 0 &&
    [...document.querySelectorAll("#messages li.msg .body")].some((b) => b.textContent === t), stalled);
  assertPage(await shownMessages(dora), 1, 6, (n) => [...SMALL, ...down, stalled][n - 1], "small after the stall");
  stored = await storedHistory(node, "small");
  assert.deepEqual(stored.map((m) => m.body), [...SMALL, ...down, stalled], "stored once");
  assert.deepEqual((await shownMessages(dora)).map((m) => m.mine), [false, false, false, true, true, true],
    "her own messages are marked as hers, carl's not");

  // ---- A room whose oldest messages were removed (its retention, or an operator's
  // trim) says so where its history starts, instead of calling that the room's start.
  assert.match(await cli(node, "trim", "--room", "five", "--before", "451"), /starts at seq 451/);
  await dora.click('#rooms li[data-room="five"] a');
  await until(dora, settled, ["five", 52]);
  const trimmed = await scrollToStart(dora, "f", 400);  // (its two newest have other bodies: not checked here)
  assert.deepEqual([trimmed.first, trimmed.min], [451, 451], "five from its first seq on, nothing below it");
  assert.equal(trimmed.start, "Older messages of #five were removed: its history starts here.");

  // ---- What the page is made of: its own script and style, under 100 KB together.
  const origin = new URL(node.http).origin;
  for (const r of fetched) assert.equal(new URL(r.url()).origin, origin, `fetched from the node only: ${r.url()}`);
  let size = 0;
  for (const r of fetched)
    if (["script", "stylesheet"].includes(r.request().resourceType())) size += (await r.body()).length;
  console.log(`script and style: ${size} bytes`);
  assert.ok(size > 0 && size < 100 * 1024, "under 100 KB of script and style");

  assert.deepEqual(failures, [], "no errors in the pages");
  console.log("chat history: ok");
} finally {
  await browser.close();
  await stopNode(node);
}
