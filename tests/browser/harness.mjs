// What the browser tests share: a real node started from its binary (and restarted on
// the same data and ports), pages in Debian's chromium, and waits on what a page shows.
import { spawn, execFile } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import { createServer as createHttpServer } from "node:http";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { extname, join } from "node:path";
import { createInterface } from "node:readline";
import { promisify } from "node:util";
import { chromium } from "playwright-core";

export const WAIT = 20_000;

// Starts `switchboard run` with the page at `webDir`: on any free ports, or on those of
// `again` (a node stopped with keepData) and its data directory.
export function startNode(binary, webDir, { extra = [], again = null } = {}) {
  const data = again?.data ?? mkdtempSync(join(tmpdir(), "switchboard-browser-"));
  const where = again
    ? ["--listen", again.client, "--publish", again.pub, "--presence", again.presence,
       "--presence-pub", again.presencePub, "--bridge", again.bridge]
    : ["--listen", "tcp://127.0.0.1:*", "--bridge", "127.0.0.1:*"];
  const args = ["run", "--data", data, "--durability", "nosync", "--metrics", "off", ...where, "--web", webDir,
    ...(again?.extra ?? extra)];
  const proc = spawn(binary, args, { stdio: ["ignore", "pipe", "inherit"] });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error("the node did not become ready")), 30_000);
    createInterface({ input: proc.stdout }).on("line", (line) => {
      const m = line.match(/^switchboard ready .* bridge=ws(s?):\/\/(\S+)\//);
      if (!m) return;
      clearTimeout(timer);
      const field = (name) => line.match(new RegExp(` ${name}=(\\S+)`))?.[1];
      resolve({
        proc, data, binary, extra: again?.extra ?? extra, http: `http${m[1]}://${m[2]}/`, bridge: m[2],
        client: field("client"), pub: field("pub"), presence: field("presence"), presencePub: field("presence_pub"),
      });
    });
    proc.on("exit", (code) => reject(new Error(`the node exited (${code}) before it was ready`)));
  });
}

// Stops the node (SIGTERM, as Ctrl-C) and waits for it to exit; removes its data
// unless it is to be started again.
export async function stopNode(node, { keepData = false } = {}) {
  if (node.proc.exitCode === null && node.proc.signalCode === null) {
    const exited = new Promise((resolve) => node.proc.once("exit", resolve));
    node.proc.kill("SIGCONT");  // in case a test left it stopped
    node.proc.kill("SIGTERM");
    await exited;
  }
  if (!keepData) rmSync(node.data, { recursive: true, force: true });
}

// The node's own command line client, on the node's client endpoint and keys.
export async function cli(node, ...args) {
  const { stdout } = await promisify(execFile)(node.binary,
    [...args, "--connect", node.client, "--keys", join(node.data, "keys")]);
  return stdout;
}

// A room's whole history, as the node has it (switchboard history --json).
export async function storedHistory(node, room) {
  const out = await cli(node, "history", "--room", room, "--limit", "1000", "--json");
  return out.split("\n").filter(Boolean).map((line) => JSON.parse(line));
}

export function launch() {
  return chromium.launch({ executablePath: "/usr/bin/chromium", headless: true, args: ["--no-sandbox"] });
}

// Waits until `predicate(arg)`, evaluated in the page, is true, with a deadline. Polled
// with page.evaluate: the page runs under the bridge's Content-Security-Policy, which
// forbids the eval that page.waitForFunction relies on. A page that reloads meanwhile
// is asked again once it is back.
export async function until(page, predicate, arg, wait = WAIT) {
  const deadline = Date.now() + wait;
  for (;;) {
    try {
      if (await page.evaluate(predicate, arg)) return;
    } catch (err) {  // the page navigated (a reload) while asked: ask the new one
      if (!/Execution context was destroyed|Cannot find context/.test(err.message)) throw err;
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${predicate} (${JSON.stringify(arg)})`);
    await new Promise((resolve) => setTimeout(resolve, 20));  // between polls, up to the deadline
  }
}

// Waits until `predicate()`, in the test's process (for what it records of the pages),
// with a deadline.
export async function eventually(predicate, what, wait = WAIT) {
  const deadline = Date.now() + wait;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

// Fails the test on a page error or a Content-Security-Policy violation.
export function watch(page, who, onFailure) {
  page.on("pageerror", (e) => onFailure(`${who}: page error: ${e.message}`));
  page.on("console", (m) => {
    if (m.type() === "error" && m.text().includes("Content Security Policy")) onFailure(`${who}: ${m.text()}`);
  });
}

// The publish frames a page sends on its WebSockets, as parsed JSON.
export function recordPublishes(page) {
  const sent = [];
  page.on("websocket", (ws) => ws.on("framesent", ({ payload }) => {
    if (typeof payload !== "string") return;
    const frame = JSON.parse(payload);
    if (frame.op === "publish") sent.push(frame);
  }));
  return sent;
}

// The messages the open room shows, in page order.
export async function shownMessages(page) {
  return page.$$eval("#messages li[data-seq]", (items) => items.map((li) => ({
    seq: Number(li.dataset.seq), user: li.querySelector(".user").textContent,
    body: li.querySelector(".body").textContent, mine: li.classList.contains("mine"),
  })));
}

// Publishes `count` messages to `room` as `user` over a WebSocket of the page's own
// (the page need only be on the bridge's origin): bodies PREFIX1, PREFIX2, ... Sent
// with up to 128 in flight, in order on one connection, so message n gets seq n of
// those; returns the seqs.
export async function publishMany(page, { user, room, count, prefix }) {
  return page.evaluate(async ([user, room, count, prefix]) => {
    const ws = new WebSocket(`${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/ws`);
    await new Promise((resolve, reject) => { ws.onopen = resolve; ws.onerror = reject; });
    let id = 0;
    const waiting = new Map();
    ws.onmessage = (e) => {
      const f = JSON.parse(e.data);
      const w = waiting.get(f.id);
      if (!w) return;
      waiting.delete(f.id);
      if (f.op === "error") w.reject(new Error(`${f.code}: ${f.message}`));
      else w.resolve(f);
    };
    const request = (op, fields) => new Promise((resolve, reject) => {
      waiting.set(++id, { resolve, reject });
      ws.send(JSON.stringify({ op, id, ...fields }));
    });
    await request("auth", { user });
    await request("create_room", { room });
    await request("join", { room });
    const seqs = new Array(count);
    let next = 0;
    const worker = async () => {
      while (next < count) {
        const n = next++;
        seqs[n] = (await request("publish", { room, cmid: `${prefix}-${n + 1}`, body: `${prefix}${n + 1}` })).seq;
      }
    };
    await Promise.all(Array.from({ length: 128 }, worker));
    ws.close();
    return seqs;
  }, [user, room, count, prefix]);
}

// A free loopback port, for the fixed ports a topology of several nodes names. Each
// port is given once in a run (two picks in a row may find the same one free).
const givenPorts = new Set();
export async function freePort() {
  for (;;) {
    // Below Linux's ephemeral range (32768 and up): a port handed out there could be
    // taken, before the node binds it, by the local end of a connection another node
    // opens meanwhile (to this node's other ports, say).
    const want = 10000 + Math.floor(Math.random() * 22000);
    if (givenPorts.has(want)) continue;
    const port = await new Promise((resolve) => {
      const server = createServer();
      server.once("error", () => resolve(0));  // in use: another
      server.listen(want, "127.0.0.1", () => server.close(() => resolve(want)));
    });
    if (port !== 0) {
      givenPorts.add(port);
      return port;
    }
  }
}

// Starts node `name` of the topology file `config` (switchboard run --config FILE
// --node NAME), whose data directory the file names `data`. The result works with
// cli(), storedHistory() and killNode() as startNode's does.
export function startTopologyNode(binary, config, name, data) {
  const proc = spawn(binary, ["run", "--config", config, "--node", name], { stdio: ["ignore", "pipe", "inherit"] });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`node ${name} did not become ready`)), 30_000);
    createInterface({ input: proc.stdout }).on("line", (line) => {
      if (!line.startsWith("switchboard ready ")) return;
      clearTimeout(timer);
      const field = (key) => line.match(new RegExp(` ${key}=(\\S+)`))?.[1];
      resolve({ proc, data, binary, name, client: field("client"), bridge: field("bridge")?.replace(/^wss?:\/\/|\/$/g, "") });
    });
    proc.on("exit", (code) => reject(new Error(`node ${name} exited (${code}) before it was ready`)));
  });
}

// Kills the node with SIGKILL (kill -9: no clean stop) and waits until it is gone.
export async function killNode(node) {
  if (node.proc.exitCode !== null || node.proc.signalCode !== null) return;
  const exited = new Promise((resolve) => node.proc.once("exit", resolve));
  node.proc.kill("SIGKILL");
  await exited;
}

// Serves the regular files at the top of `webDir` (the web page) on a free loopback
// port, as an operator's own web server in front of a cluster would: with the headers
// the bridge sends, but a Content-Security-Policy whose connect-src lists `bridges`
// (ws:// or wss:// URLs), so that the page may open each of them. Resolves to
// { origin, close() }.
export function serveWeb(webDir, bridges) {
  const types = { ".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8" };
  const server = createHttpServer((req, res) => {
    const name = new URL(req.url, "http://x").pathname.replace(/^\/$/, "/index.html").slice(1);
    const path = join(webDir, name);
    if (name.includes("/") || !existsSync(path) || !statSync(path).isFile()) {
      res.writeHead(404).end("not found\n");
      return;
    }
    res.writeHead(200, {
      "Content-Type": types[extname(name)] ?? "application/octet-stream",
      "Cache-Control": "no-cache",
      "X-Content-Type-Options": "nosniff",
      "X-Frame-Options": "DENY",
      "Referrer-Policy": "no-referrer",
      "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
        `connect-src ${bridges.join(" ")}; base-uri 'none'; form-action 'self'; frame-ancestors 'none'`,
    });
    res.end(req.method === "HEAD" ? undefined : readFileSync(path));
  });
  return new Promise((resolve) => server.listen(0, "127.0.0.1", () => resolve({
    origin: `http://127.0.0.1:${server.address().port}`,
    close: () => new Promise((done) => { server.closeAllConnections(); server.close(done); }),
  })));
}
