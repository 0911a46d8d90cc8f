// The web chat page follows a failover (docs/REPLICATION.md, "Clients follow a lost
// node"), end to end: three real nodes of one topology, one shard owned by a with
// replicas b and c, `ack = "replicated"`, so that it fails over; the page in headless
// Chromium, given the three bridges (`?bridges=`), served by a web server of the
// operator's own (the bridge's Content-Security-Policy lets a page it serves connect to
// that bridge only) whose origin each node admits (`bridge_origins`). Ann's page follows
// the room on a's bridge; bob posts with the CLI through b, one message after another;
// ann types too; a (the primary, and the node the page's WebSocket is on) is killed
// with SIGKILL in the middle of it. The page moves to another node, says so in its
// status line, and ends showing the room's whole stored history, each message once and
// in seq order, with each of its own messages stored once, those typed during the
// failover included.
//
// With MODE "node", the page is served by a's own bridge (`--web`) instead, with no
// `bridge_origins` at all: a node admits the pages of its topology's other bridges, and
// the page it serves may open them (BridgeOptions::peer_bridges).
//
// Usage: node failover_test.mjs SWITCHBOARD_BINARY WEB_DIR OUT_DIR [site|node]
// Saves OUT_DIR/failover.png (and, when it fails, OUT_DIR/failover-frames.txt: every
// frame the page sent and received). Every wait is on something the page shows or a command
// answers, with a deadline; nothing sleeps in place of synchronisation.
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  cli, eventually, freePort, killNode, launch, recordPublishes, serveWeb, shownMessages, startTopologyNode,
  storedHistory, until, watch, WAIT,
} from "./harness.mjs";

const [binary, webDir, outDir, mode = "site"] = process.argv.slice(2);
assert.ok(mode === "site" || mode === "node", `MODE is site or node, not ${mode}`);
const ROOM = "ops";
const NAMES = ["a", "b", "c"];
const BOB_MAX = 300;

// Fixed ports for every endpoint of the three nodes (the nodes of a file connect to
// each other's, and the page's server names the bridges in its policy).
async function pickPorts() {
  const ports = {};
  for (const n of NAMES) {
    ports[n] = {};
    for (const key of ["client", "publish", "presence", "presence_pub", "peer", "presence_peer", "bridge"])
      ports[n][key] = await freePort();
  }
  return ports;
}

// The topology: a heartbeat of 200 ms, so that a lost primary is replaced within about
// a second; every node's bridge admits the page's origin (site), or serves the page
// (node); no rate limits (bob's posts
// and the page's resends are not what is under test).
function writeTopology(dir, ports, pageOrigin) {
  let text = "[cluster]\nheartbeat_ms = 200\nmisses = 3\n\n";
  for (const n of NAMES) {
    text += `[nodes.${n}]\n`;
    for (const key of ["client", "publish", "presence", "presence_pub", "peer", "presence_peer"])
      text += `${key} = "tcp://127.0.0.1:${ports[n][key]}"\n`;
    text += `bridge = "127.0.0.1:${ports[n].bridge}"\n`;
    if (pageOrigin) text += `bridge_origins = ["${pageOrigin}"]\n`;
    else text += `web = "${webDir}"\n`;  // each node serves the page
    text += `data = "${join(dir, n)}"\ndurability = "nosync"\nmetrics = "off"\n\n`;
  }
  text += '[[shards]]\nname = "s1"\nowner = "a"\nreplicas = ["b", "c"]\nack = "replicated"\n\n';
  text += "[limits]\npublish_per_s = 0\nrequests_per_s = 0\n";
  const path = join(dir, "topology.toml");
  writeFileSync(path, text);
  return path;
}

// Posts `body` as `user` through `node` with the CLI, with the same cmid until it is
// acknowledged (a node between primaries answers `unavailable`; the cmid makes a retry
// of a post that was stored come back with its seq, stored once): returns the seq.
async function postUntilAcked(node, user, cmid, body) {
  const deadline = Date.now() + WAIT;
  for (;;) {
    try {
      return Number((await cli(node, "post", "--room", ROOM, "--user", user, "--cmid", cmid, body)).trim());
    } catch (err) {
      if (Date.now() > deadline) throw new Error(`${body} was not acknowledged within ${WAIT} ms: ${err.message}`);
    }
  }
}

// What the status line says.
const statusOf = (page) => page.evaluate(() => document.getElementById("status").textContent);

// Types `body` in the page's composer and sends it (Enter): it goes to the outbox at
// once, whether or not the page is connected.
async function type(page, body) {
  await page.fill("#text", body);
  await page.press("#text", "Enter");
}

const dir = mkdtempSync(join(tmpdir(), "switchboard-failover-"));
const ports = await pickPorts();
const bridges = NAMES.map((n) => `127.0.0.1:${ports[n].bridge}`);
const site = mode === "site" ? await serveWeb(webDir, bridges.map((b) => `ws://${b}`)) : null;
const origin = site ? site.origin : `http://${bridges[0]}`;  // node: a's bridge serves the page
const config = writeTopology(dir, ports, site?.origin);
const nodes = {};
let browser = null;
const failures = [];
const trace = [];
try {
  for (const n of NAMES) nodes[n] = await startTopologyNode(binary, config, n, join(dir, n));
  const { a, b } = nodes;
  assert.deepEqual(NAMES.map((n) => nodes[n].bridge), bridges, "each node's bridge where the file puts it");

  // The shard starts once a majority of its members have reached each other; until
  // then a write is answered unavailable. Bob's first post waits for it.
  let k = 0;
  const acked = [];  // bob's acknowledged posts: { seq, body }
  const bobPosts = async (n) => {
    for (const end = k + n; k < end;) {
      k++;
      acked.push({ seq: await postUntilAcked(b, "bob", `bob-${k}`, `bob ${k}`), body: `bob ${k}` });
    }
  };
  await bobPosts(1);

  browser = await launch();
  const page = await (await browser.newContext({ viewport: { width: 1280, height: 720 } })).newPage();
  watch(page, "ann", (text) => failures.push(text));
  const sockets = [];  // the bridges the page opened, in order
  page.on("websocket", (ws) => sockets.push(new URL(ws.url()).host));
  const sent = recordPublishes(page);
  // Every frame of the page's, with the time and the bridge: saved when the test fails.
  const t0 = Date.now();
  page.on("websocket", (ws) => {
    const port = new URL(ws.url()).port;
    trace.push(`${Date.now() - t0} ms: open ${ws.url()}`);
    ws.on("close", () => trace.push(`${Date.now() - t0} ms: closed ${ws.url()}`));
    ws.on("framesent", ({ payload }) => trace.push(`${Date.now() - t0} ms: ${port} > ${payload}`));
    ws.on("framereceived", ({ payload }) => trace.push(`${Date.now() - t0} ms: ${port} < ${payload}`));
  });
  await page.goto(`${origin}/?user=ann&room=${ROOM}&bridges=${bridges.join(",")}`);
  // What the status line said, in order (read at the end).
  await page.evaluate(() => {
    window.statusSaid = [];
    const status = document.getElementById("status");
    new MutationObserver(() => window.statusSaid.push(status.textContent))
      .observe(status, { childList: true, characterData: true, subtree: true });
  });
  // a's: the first bridge of the list, and (node) the page's own origin.
  await until(page, (want) => document.getElementById("status").textContent === want, `connected as ann via ${bridges[0]}`);
  assert.equal(new URL(page.url()).searchParams.get("bridges"), bridges.join(","), "the list stays in the address");

  // A refused sign-in stops the page, with several bridges as with one: a sign-in link
  // on nodes that take none. It has opened one WebSocket, and still has at the end.
  const refused = await (await browser.newContext()).newPage();
  watch(refused, "the refused page", (text) => failures.push(text));
  let refusedSockets = 0;
  refused.on("websocket", () => refusedSockets++);
  await refused.goto(`${origin}/?room=${ROOM}&bridges=${bridges.join(",")}#token=not-a-token`);
  await until(refused, () => document.getElementById("status").textContent === "not signed in", null);

  // Before the failover: both users' messages, shown once each.
  const annSent = [];
  for (let i = 1; i <= 3; i++) {
    annSent.push(`ann ${i}`);
    await type(page, `ann ${i}`);
  }
  await bobPosts(3);
  await until(page, (n) => document.querySelectorAll("#messages li[data-seq]").length === n &&
    !document.querySelector("#outbox li"), 7);

  // Bob posts one message after another through b for the rest of the test. Ann types
  // one, and a (the shard's primary, the page's node) is stopped (SIGSTOP) at once: it
  // may or may not have taken the message, stored it, replicated it or answered. It is
  // killed with SIGKILL once the page has sent it; ann types two more while the page
  // has no node.
  // (At most BOB_MAX in all: the whole room fits the page's window of 400 messages.)
  let posting = true;
  const bobAll = (async () => {
    while (posting && k < BOB_MAX) await bobPosts(1);
  })();
  const before = acked.length;
  await eventually(() => acked.length >= before + 2, "bob posting through b");
  annSent.push("ann 4");
  await type(page, "ann 4");
  a.proc.kill("SIGSTOP");
  await eventually(() => sent.some((f) => f.body === "ann 4"), "ann 4 sent to a");
  trace.push(`${Date.now() - t0} ms: a killed`);
  await killNode(a);
  for (const body of ["ann 5", "ann 6"]) {
    annSent.push(body);
    await type(page, body);
  }

  // The page moves on: b or c, named in its status line.
  await until(page, (a) => /^connected as ann via /.test(document.getElementById("status").textContent) &&
    !document.getElementById("status").textContent.endsWith(a), bridges[0]);
  const status = await statusOf(page);
  assert.ok([bridges[1], bridges[2]].some((b) => status === `connected as ann via ${b}`), status);

  // Typed on the new node, while bob goes on posting; then bob stops.
  for (const body of ["ann 7", "ann 8"]) {
    annSent.push(body);
    await type(page, body);
  }
  const after = acked.length;
  await eventually(() => acked.length >= Math.min(after + 3, BOB_MAX), "bob's posts after the failover");
  posting = false;
  await bobAll;

  // The end: the outbox empty (every one of ann's messages acknowledged) and the page
  // showing the room's whole history, as a surviving node has it.
  try {
    await until(page, () => !document.querySelector("#outbox li"), null);
  } catch (err) {
    const left = await page.$$eval("#outbox li", (items) => items.map((li) => li.textContent));
    throw new Error(`${err.message}; the outbox holds ${JSON.stringify(left)}; status: ${await statusOf(page)}`);
  }
  const stored = (await storedHistory(b, ROOM)).map((m) => ({ seq: m.seq, user: m.user, body: m.body }));
  const want = stored.map((m) => `${m.seq} ${m.user}: ${m.body}`);
  // (On a timeout the comparison below says what is missing.)
  await until(page, (n) => document.querySelectorAll("#messages li[data-seq]").length >= n, want.length).catch(() => {});
  const shown = (await shownMessages(page)).map((m) => `${m.seq} ${m.user}: ${m.body}`);
  assert.deepEqual(shown, want, "the page shows the stored history, each message once, in seq order");
  assert.deepEqual(stored.map((m) => m.seq), stored.map((_, i) => i + 1), "the room's seqs are gapless");
  // Each of ann's messages stored once, those typed while a was dying included.
  for (const body of annSent)
    assert.equal(stored.filter((m) => m.user === "ann" && m.body === body).length, 1, `"${body}" stored once`);
  assert.equal(stored.filter((m) => m.user === "ann").length, annSent.length, "nothing else of ann's stored");
  // Each of bob's acknowledged posts is where its ack said, once.
  for (const { seq, body } of acked) assert.equal(stored[seq - 1]?.body, body, `bob's ${body} at seq ${seq}`);
  assert.equal(stored.filter((m) => m.user === "bob").length, acked.length, "bob's posts stored once each");
  assert.equal(sockets[0], bridges[0], "the page started on a's bridge");
  assert.notEqual(sockets.at(-1), bridges[0], "and left it");
  const said = await page.evaluate(() => window.statusSaid);
  assert.ok(said.some((t) => t.startsWith(`disconnected from ${bridges[0]} (`)), `the status line said a was lost: ${said}`);
  assert.equal(refusedSockets, 1, "the refused page tried no other bridge");
  assert.equal(await statusOf(refused), "not signed in");
  // Whatever became of "ann 4" on a: sent again to the new node unless a answered it,
  // always with its cmid (stored once: above).
  assert.equal(new Set(sent.filter((f) => f.body === "ann 4").map((f) => f.cmid)).size, 1, "ann 4 has one cmid");
  mkdirSync(outDir, { recursive: true });
  await page.screenshot({ path: join(outDir, "failover.png") });
  assert.deepEqual(failures, [], "no errors in the page");
  // What the page did (it varies with where the kill fell): the bridges it tried, and
  // its messages sent more than once (same cmid: resent after the failover).
  const resent = [...new Set(sent.map((f) => f.cmid))].filter((c) => sent.filter((f) => f.cmid === c).length > 1);
  const names = Object.fromEntries(NAMES.map((n, i) => [bridges[i], n]));
  console.log(`failover: ok; ${stored.length} messages (${annSent.length} ann's, ${acked.length} bob's); ` +
    `the page opened ${sockets.map((h) => names[h]).join(" ")}; ${resent.length} of ann's resent ` +
    `(${resent.map((c) => sent.find((f) => f.cmid === c).body).join(", ")}); the status line said: ` +
    `${said.filter((t, i) => t !== said[i - 1]).map((t) => JSON.stringify(t)).join(", ")}; screenshot in ${outDir}`);
} catch (err) {
  mkdirSync(outDir, { recursive: true });
  writeFileSync(join(outDir, "failover-frames.txt"), `${trace.join("\n")}\n`);
  console.error(`failover: the page's frames are in ${join(outDir, "failover-frames.txt")}`);
  throw err;
} finally {
  await browser?.close();
  await site?.close();
  for (const node of Object.values(nodes)) await killNode(node);
  rmSync(dir, { recursive: true, force: true });
}
