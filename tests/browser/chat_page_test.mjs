// The web chat page (examples/web/) end to end: a real node, its bridge, and two
// pages in headless Chromium (Debian's chromium, driven by playwright-core).
//
// Usage: node chat_page_test.mjs SWITCHBOARD_BINARY WEB_DIR OUT_DIR
// Saves OUT_DIR/chat_page.png. Every wait is on something the page shows, with a
// deadline; nothing sleeps in place of synchronisation.
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
  return page.$$eval("#messages li", (items) => items.map((li) => ({
    seq: Number(li.dataset.seq), user: li.querySelector(".user").textContent,
    body: li.querySelector(".body").textContent,
  })));
}

async function waitForMessages(page, count) {
  await until(page, (n) => document.querySelectorAll("#messages li").length >= n, count);
  return messages(page);
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
  const open = async (user) => {
    const page = await (await browser.newContext()).newPage();
    page.on("pageerror", (e) => { failed = true; console.error(`${user}: page error: ${e.message}`); });
    // The page must work under the bridge's Content-Security-Policy: a violation fails the test.
    page.on("console", (m) => {
      if (m.type() === "error" && m.text().includes("Content Security Policy")) {
        failed = true;
        console.error(`${user}: ${m.text()}`);
      }
    });
    await page.goto(`${node.http}?user=${user}&room=lobby`);
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

  mkdirSync(outDir, { recursive: true });
  await ann.screenshot({ path: join(outDir, "chat_page.png"), fullPage: true });

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
