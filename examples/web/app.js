// Switchboard web chat: one WebSocket to the bridge (docs/PROTOCOL.md section 10),
// JSON text frames. Shows each message once, in seq order: after a reconnect it
// subscribes from the last seq it shows, and the bridge fills the gap from history.
"use strict";

const $ = (id) => document.getElementById(id);
const HISTORY_ON_ENTRY = 100;  // messages shown when entering a room
const TYPING_EVERY_MS = 2000;  // at most one typing notice this often

const state = {
  user: "", room: "", ws: null, nextId: 1, waiting: new Map(),
  lastSeq: 0,           // the highest seq shown
  shown: new Set(),     // seqs shown, so nothing appears twice
  typing: new Map(),    // user -> timer hiding their indicator
  lastTyping: 0, retryMs: 250, entered: false,
  connections: 0,       // times the page entered the room (1 + reconnects)
};

function setStatus(text, live) {
  $("status").textContent = text;
  $("status").classList.toggle("live", !!live);
}

function request(op, fields = {}) {
  const id = state.nextId++;
  state.ws.send(JSON.stringify({ op, id, ...fields }));
  return new Promise((resolve, reject) => state.waiting.set(id, { resolve, reject }));
}

function show(m) {
  if (state.shown.has(m.seq)) return;  // a duplicate never shows
  state.shown.add(m.seq);
  state.lastSeq = Math.max(state.lastSeq, m.seq);
  const li = document.createElement("li");
  li.dataset.seq = m.seq;
  const user = document.createElement("span");
  user.className = "user";
  user.textContent = m.user;
  const body = document.createElement("span");
  body.className = "body";
  body.textContent = m.body;
  const time = document.createElement("time");
  time.className = "time";
  time.textContent = new Date(m.ts).toLocaleTimeString();
  li.append(user, body, time);
  // Keep seq order even if a page of history lands after live messages.
  const list = $("messages");
  let before = null;
  for (let el = list.lastElementChild; el && Number(el.dataset.seq) > m.seq; el = el.previousElementSibling)
    before = el;
  list.insertBefore(li, before);
  if (!before) list.scrollTop = list.scrollHeight;
  hideTyping(m.user);
}

async function refreshWho() {
  const who = await request("who", { room: state.room });
  const list = $("who");
  list.replaceChildren(...who.users.map((u) => {
    const li = document.createElement("li");
    li.textContent = u.user + (u.text ? ` (${u.text})` : "");
    li.dataset.user = u.user;
    li.className = u.status;
    return li;
  }));
}

function renderTyping() {
  const names = [...state.typing.keys()];
  $("typing").textContent = names.length ? `${names.join(", ")} ${names.length > 1 ? "are" : "is"} typing…` : "";
}
function hideTyping(user) {
  clearTimeout(state.typing.get(user));
  if (state.typing.delete(user)) renderTyping();
}

function onPresence(e) {
  if (e.kind === "typing") {
    if (e.user === state.user) return;
    clearTimeout(state.typing.get(e.user));
    state.typing.set(e.user, setTimeout(() => hideTyping(e.user), e.ttl_ms || 5000));
    renderTyping();
  } else {
    if (e.kind === "offline" || e.kind === "leave") hideTyping(e.user);
    refreshWho().catch(() => {});
  }
}

function onFrame(event) {
  const frame = JSON.parse(event.data);
  if (frame.op === "message") return frame.room === state.room && show(frame);
  if (frame.op === "presence") return frame.room === state.room && onPresence(frame);
  const waiter = state.waiting.get(frame.id);
  if (!waiter) return;
  state.waiting.delete(frame.id);
  if (frame.op === "error") waiter.reject(new Error(`${frame.code}: ${frame.message}`));
  else waiter.resolve(frame);
}

async function enterRoom() {
  await request("auth", { user: state.user });
  await request("create_room", { room: state.room });
  await request("join", { room: state.room });
  if (!state.entered) {
    // First time: the latest page of history, then everything after it.
    const page = await request("history", { room: state.room, limit: HISTORY_ON_ENTRY });
    page.messages.forEach(show);
    state.entered = true;
  }
  // After a reconnect, from the last seq shown: the bridge repairs the gap.
  await request("subscribe", { room: state.room, after: state.lastSeq });
  await refreshWho();
}

function connect() {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  const ws = new WebSocket(`${scheme}//${location.host}/ws`);
  state.ws = ws;
  setStatus("connecting…");
  ws.onmessage = onFrame;
  ws.onopen = () => {
    enterRoom().then(() => {
      state.retryMs = 250;
      state.connections++;
      setStatus(`connected as ${state.user}`, true);
    }).catch((err) => setStatus(`error: ${err.message}`));
  };
  ws.onclose = (e) => {
    for (const w of state.waiting.values()) w.reject(new Error("disconnected"));
    state.waiting.clear();
    setStatus(`reconnecting (${e.code})…`);
    setTimeout(connect, state.retryMs);
    state.retryMs = Math.min(state.retryMs * 2, 5000);
  };
}

$("enter").addEventListener("submit", (e) => {
  e.preventDefault();
  state.user = $("user").value.trim();
  state.room = $("room").value.trim();
  if (!state.user || !state.room) return;
  history.replaceState(null, "", `?user=${encodeURIComponent(state.user)}&room=${encodeURIComponent(state.room)}`);
  $("enter").hidden = true;
  $("chat").hidden = false;
  $("room-title").textContent = `# ${state.room}`;
  connect();
});

$("compose").addEventListener("submit", (e) => {
  e.preventDefault();
  const body = $("text").value;
  if (!body || !state.ws || state.ws.readyState !== WebSocket.OPEN) return;
  const cmid = crypto.randomUUID();
  request("publish", { room: state.room, cmid, body })
    .then(() => { if ($("text").value === body) $("text").value = ""; })
    .catch((err) => setStatus(`not sent: ${err.message}`));
});

$("text").addEventListener("input", () => {
  const now = Date.now();
  if (now - state.lastTyping < TYPING_EVERY_MS || state.ws?.readyState !== WebSocket.OPEN) return;
  state.lastTyping = now;
  request("typing", { room: state.room }).catch(() => {});
});

// ?user=ann&room=general enters at once (and survives a reload).
const params = new URLSearchParams(location.search);
if (params.get("user") && params.get("room")) {
  $("user").value = params.get("user");
  $("room").value = params.get("room");
  $("enter").requestSubmit();
}
