// Switchboard web chat: one WebSocket to the bridge (docs/PROTOCOL.md section 10),
// JSON text frames. Shows each message once, in seq order: after a reconnect it
// subscribes from the last seq it shows, and the bridge fills the gap from history.
//
// Read state (docs/PROTOCOL.md 4.5, 4.9.1): the room list comes from `rooms {mine}`
// summaries. Every room of the list is followed on the same connection (the open one
// with presence, the others without), from the last seq the summary gave, so each
// message that arrives counts once towards its room's badge: seqs are gapless, so
// unread = last seq - read marker, exact. Pushed `read` frames move the marker when
// any tab of the user marks a room read.
"use strict";

const $ = (id) => document.getElementById(id);
const HISTORY_ON_ENTRY = 100;   // messages shown when entering a room ...
const HISTORY_MAX = 1000;       // ... or, when more are unread, all of them up to the node's page
const READ_CONTEXT = 10;        // read messages shown above the first unread one
const TYPING_EVERY_MS = 2000;   // at most one typing notice this often
const MARK_READ_AFTER_MS = 300; // one mark_read per burst of messages seen or scrolls
const REFRESH_AFTER_MS = 200;   // one `rooms` request per burst of reasons to ask
const MAX_FOLLOWED = 128;       // rooms one connection may follow (the bridge's limit)
const PREVIEW_CHARS = 100;      // as the node's summaries (100 bytes there)
const TITLE = document.title;

const state = {
  user: "", room: "", ws: null, nextId: 1, waiting: new Map(),
  entryRoom: "",        // the room of the enter form: created and joined at each connect
  lastSeq: 0,           // the highest seq shown (of the open room)
  shown: new Set(),     // seqs shown, so nothing appears twice
  typing: new Map(),    // user -> timer hiding their indicator
  lastTyping: 0, retryMs: 250, entered: false,
  connections: 0,       // times the page entered the room (1 + reconnects)
  rooms: new Map(),     // room -> { lastSeq, lastTs, lastUser, preview, readSeq, markSent, mentions, role }
  order: [],            // room names, newest activity first
  roomItems: new Map(), // room -> its <li> in the room list
  followed: new Set(),  // rooms this connection subscribed to
  dividerAfter: null,   // the read marker when the open room was opened (null: no divider)
  opening: 0,           // bumped by each room switch; a stale one's replies are dropped
  markTimer: 0, refreshTimer: 0,
};

function setStatus(text, live) {
  $("status").textContent = text;
  $("status").classList.toggle("live", !!live);
}

const connected = () => state.ws?.readyState === WebSocket.OPEN;

function request(op, fields = {}) {
  const id = state.nextId++;
  state.ws.send(JSON.stringify({ op, id, ...fields }));
  return new Promise((resolve, reject) => state.waiting.set(id, { resolve, reject }));
}

// ---- The room list ----------------------------------------------------------------

const unread = (r) => Math.max(0, r.lastSeq - r.readSeq);

// Merges a summary into what the page knows. Seqs and markers only grow, so a summary
// and the frames that crossed it on the wire merge in any order.
function mergeSummary(s) {
  const r = state.rooms.get(s.room) ?? { lastSeq: 0, readSeq: 0, markSent: 0, lastTs: 0, lastUser: "", preview: "" };
  r.role = s.role;
  if (s.last_seq >= r.lastSeq) Object.assign(r, { lastTs: s.last_ts, lastUser: s.last_user, preview: s.preview });
  r.lastSeq = Math.max(r.lastSeq, s.last_seq);
  r.readSeq = Math.max(r.readSeq, s.read_seq);
  r.mentions = unread(r) ? (s.mentions ?? 0) : 0;  // counted by the node, when it counts them
  state.rooms.set(s.room, r);
}

// Asks for the user's rooms, then follows those not followed yet (all but `except`,
// which its opener subscribes to with presence).
async function refreshRooms(except = state.room) {
  const reply = await request("rooms", { mine: true });
  const summaries = reply.summaries ?? reply.rooms.map((room) => ({ room, last_seq: 0, read_seq: 0, last_ts: 0 }));
  const listed = new Set(summaries.map((s) => s.room));
  summaries.forEach(mergeSummary);
  // Rooms of a node that did not answer (`missing`) stay as they were, at the end.
  const kept = reply.missing ? state.order.filter((n) => !listed.has(n) && state.rooms.has(n)) : [];
  for (const name of state.rooms.keys())
    if (!listed.has(name) && !kept.includes(name)) state.rooms.delete(name);
  state.order = [...summaries.map((s) => s.room), ...kept];
  renderRooms();
  await followRooms(except);
}

function scheduleRefresh() {
  clearTimeout(state.refreshTimer);
  state.refreshTimer = setTimeout(() => { if (connected()) refreshRooms().catch(() => {}); }, REFRESH_AFTER_MS);
}

// Follows the rooms of the list without presence, newest activity first, as many as
// the bridge allows (one place is kept for the open room). A room past that limit
// gets its count when the list is asked again (reconnect, tab shown again).
async function followRooms(except) {
  const asks = [];
  for (const name of [...state.followed]) {  // left, or deleted
    if (state.rooms.has(name) || name === state.room) continue;
    state.followed.delete(name);
    asks.push(request("unsubscribe", { room: name }).catch(() => {}));
  }
  for (const name of state.order) {
    if (name === except || state.followed.has(name)) continue;
    if (state.followed.size >= MAX_FOLLOWED - 1) break;
    state.followed.add(name);
    const after = state.rooms.get(name).lastSeq;
    asks.push(request("subscribe", { room: name, after, presence: false }).catch(() => state.followed.delete(name)));
  }
  await Promise.all(asks);
}

function roomItem(name) {
  let li = state.roomItems.get(name);
  if (li) return li;
  li = document.createElement("li");
  li.dataset.room = name;
  const link = document.createElement("a");
  link.href = `#${encodeURIComponent(name)}`;
  const title = document.createElement("span");
  title.className = "name";
  title.textContent = `# ${name}`;
  const mention = document.createElement("span");
  mention.className = "mention";
  mention.textContent = "@";
  mention.title = "you were mentioned";
  const badge = document.createElement("span");
  badge.className = "badge";
  const preview = document.createElement("span");
  preview.className = "preview";
  link.append(title, mention, badge, preview);
  li.append(link);
  state.roomItems.set(name, li);
  return li;
}

function renderRooms() {
  let total = 0;
  const items = state.order.filter((n) => state.rooms.has(n)).map((name) => {
    const r = state.rooms.get(name);
    const count = unread(r);
    total += count;
    const li = roomItem(name);
    li.classList.toggle("unread", count > 0);
    const link = li.firstElementChild;
    if (name === state.room) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
    const badge = li.querySelector(".badge");
    badge.textContent = String(count);
    badge.title = `${count} unread`;
    badge.hidden = count === 0;
    li.querySelector(".mention").hidden = !(r.mentions > 0);
    li.querySelector(".preview").textContent = r.lastUser ? `${r.lastUser}: ${r.preview}` : "";
    return li;
  });
  for (const [name, li] of state.roomItems)
    if (!state.rooms.has(name)) { li.remove(); state.roomItems.delete(name); }
  const list = $("rooms");
  if (items.length !== list.children.length || items.some((li, i) => list.children[i] !== li))
    list.replaceChildren(...items);
  document.title = total ? `(${total}) ${TITLE}` : TITLE;
  $("rooms-total").textContent = String(total);
  $("rooms-total").hidden = total === 0;
}

// A message of any followed room: its badge, preview and place in the list.
function noteMessage(m) {
  const r = state.rooms.get(m.room);
  if (!r) return;
  if (m.seq > r.lastSeq) {  // new to the page (a resumed subscription may repeat some)
    const preview = m.body.slice(0, PREVIEW_CHARS).replace(/[\uD800-\uDBFF]$/, "");
    Object.assign(r, { lastSeq: m.seq, lastTs: m.ts, lastUser: m.user, preview });
    state.order = [m.room, ...state.order.filter((n) => n !== m.room)];
    // A message naming the user in `mentions` counts as the node counts it.
    if (m.user !== state.user && Array.isArray(m.mentions) && m.mentions.includes(state.user))
      r.mentions = (r.mentions ?? 0) + 1;
  }
  if (m.user === state.user) r.readSeq = Math.max(r.readSeq, m.seq);  // publishing moves the sender's marker
  if (!unread(r)) r.mentions = 0;
  renderRooms();
}

// A pushed `read` frame: one of the user's connections (maybe this one) moved a marker.
function onRead(e) {
  const r = state.rooms.get(e.room);
  if (!r) return scheduleRefresh();  // a room joined in another tab
  r.readSeq = Math.max(r.readSeq, e.seq);
  r.lastSeq = Math.max(r.lastSeq, e.seq);
  settleMentions(r);
  renderRooms();
}

// Mentions left after the marker moved: none when all is read; else only the node knows.
function settleMentions(r) {
  if (!unread(r)) r.mentions = 0;
  else if (r.mentions > 0) scheduleRefresh();
}

// ---- The open room ------------------------------------------------------------------

function atBottom(list) {
  return list.scrollHeight - list.scrollTop - list.clientHeight < 8;
}

function show(m) {
  if (state.shown.has(m.seq)) return;  // a duplicate never shows
  state.shown.add(m.seq);
  state.lastSeq = Math.max(state.lastSeq, m.seq);
  const li = document.createElement("li");
  li.dataset.seq = m.seq;
  if (Array.isArray(m.mentions) && m.mentions.includes(state.user)) li.classList.add("mentions-me");
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
  // Keep seq order even if a page of history lands after live messages; the divider
  // stands between the read marker and the next seq.
  const list = $("messages");
  const stick = atBottom(list) || m.user === state.user;
  let before = null;
  for (let el = list.lastElementChild; el; el = el.previousElementSibling) {
    const seq = el.dataset.seq ? Number(el.dataset.seq) : state.dividerAfter + 0.5;
    if (seq < m.seq) break;
    before = el;
  }
  list.insertBefore(li, before);
  if (!before && stick) list.scrollTop = list.scrollHeight;
  hideTyping(m.user);
  if (!before) scheduleMarkRead();
}

// "New messages" above the first message past the marker the room was opened with;
// scrolled to, so the first unread message is in view.
function placeDivider() {
  const list = $("messages");
  list.querySelector(".divider")?.remove();
  if (state.dividerAfter === null) return;
  const first = [...list.children].find((li) => Number(li.dataset.seq) > state.dividerAfter);
  if (!first) return;
  const divider = document.createElement("li");
  divider.className = "divider";
  divider.setAttribute("role", "separator");
  divider.textContent = "New messages";
  list.insertBefore(divider, first);
  list.scrollTop += divider.getBoundingClientRect().top - list.getBoundingClientRect().top - 4;
}

function newestShown() {
  for (let el = $("messages").lastElementChild; el; el = el.previousElementSibling)
    if (el.dataset.seq) return el;
  return null;
}

// The newest message is on screen: the tab is visible and the list is scrolled to it.
function newestIsSeen(li) {
  if (document.visibilityState !== "visible" || $("chat").hidden) return false;
  const box = $("messages").getBoundingClientRect();
  const item = li.getBoundingClientRect();
  return item.height > 0 && item.bottom <= box.bottom + 2 && item.bottom > box.top;
}

function scheduleMarkRead() {
  clearTimeout(state.markTimer);
  state.markTimer = setTimeout(markRead, MARK_READ_AFTER_MS);
}

// mark_read for the newest message seen, only forward and once per seq; the pushed
// `read` frame (to every tab of the user) and the reply both move the marker here.
function markRead() {
  clearTimeout(state.markTimer);
  const r = state.rooms.get(state.room);
  const li = newestShown();
  if (!r || !li || !state.entered || !connected() || !newestIsSeen(li)) return;
  const seq = Number(li.dataset.seq);
  if (seq <= Math.max(r.readSeq, r.markSent)) return;
  r.markSent = seq;
  request("mark_read", { room: state.room, seq }).then((reply) => {
    r.readSeq = Math.max(r.readSeq, reply.seq);
    r.lastSeq = Math.max(r.lastSeq, reply.seq + reply.unread);
    settleMentions(r);
    renderRooms();
  }).catch(() => { if (r.markSent === seq) r.markSent = 0; });  // asked again when next seen
}

async function refreshWho() {
  const room = state.room;
  const who = await request("who", { room });
  if (room !== state.room) return;
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

function roomInHash() {
  try {
    return decodeURIComponent(location.hash.slice(1));
  } catch {
    return "";
  }
}

// Opens `name` in place of the open room: joins it first if it is not one of the
// user's (a link to a public room). Returns false if it cannot be opened.
async function openRoom(name) {
  const ticket = ++state.opening;
  if (!state.rooms.has(name)) {
    try {
      await request("join", { room: name });
      await refreshRooms(name);
    } catch (err) {
      if (ticket === state.opening) {
        $("room-error").textContent = `cannot open #${name}: ${err.message}`;
        if (state.room) history.replaceState(null, "", `#${encodeURIComponent(state.room)}`);
      }
      return false;
    }
    if (ticket !== state.opening) return false;
  }
  const previous = state.rooms.get(state.room);
  if (previous && state.room !== name && connected()) {
    markRead();  // what is on screen as the user leaves was seen: no waiting for the debounce
    // Still followed for its badge, now without presence.
    request("subscribe", { room: state.room, after: previous.lastSeq, presence: false }).catch(() => {});
  }
  state.room = name;
  state.entered = false;
  state.lastSeq = 0;
  state.shown = new Set();
  for (const user of [...state.typing.keys()]) hideTyping(user);
  $("messages").replaceChildren();
  $("who").replaceChildren();
  $("room-title").textContent = `# ${name}`;
  const readOnly = state.rooms.get(name)?.role === "reader";
  $("text").disabled = $("send").disabled = readOnly;
  $("text").placeholder = readOnly ? "You may read this room, not write in it" : "Write a message";
  if (roomInHash() !== name) history.replaceState(null, "", `#${encodeURIComponent(name)}`);
  closeDrawer();
  renderRooms();
  await loadOpenRoom(ticket);
  return true;
}

// Shows the open room: the newest history the first time (all unread messages, up to
// the node's page, with a few read ones above), then follows it from the newest seq
// shown; after a reconnect only the latter, and the bridge fills the gap.
async function loadOpenRoom(ticket) {
  const room = state.room;
  if (!state.entered) {
    const r = state.rooms.get(room);
    const waiting = r ? unread(r) : 0;
    state.dividerAfter = waiting ? r.readSeq : null;
    const limit = Math.min(HISTORY_MAX, Math.max(HISTORY_ON_ENTRY, waiting + READ_CONTEXT));
    const page = await request("history", { room, limit });
    if (ticket !== state.opening) return;
    for (const m of page.messages) {
      if (r && m.seq > r.lastSeq) noteMessage({ ...m, room });  // newer than the summary was
      show(m);
    }
    placeDivider();
    state.entered = true;
  }
  if (!state.followed.has(room) && state.followed.size >= MAX_FOLLOWED) {
    // The open room comes first: the room of the oldest activity gives up its place.
    const oldest = state.order.findLast((n) => n !== room && state.followed.has(n));
    state.followed.delete(oldest);
    request("unsubscribe", { room: oldest }).catch(() => {});
  }
  state.followed.add(room);
  await request("subscribe", { room, after: state.lastSeq }).catch((err) => {
    state.followed.delete(room);
    throw err;
  });
  if (ticket !== state.opening) return;
  await refreshWho();
  scheduleMarkRead();
}

function onFrame(event) {
  const frame = JSON.parse(event.data);
  if (frame.op === "message") {
    noteMessage(frame);
    if (frame.room === state.room) show(frame);
    return;
  }
  if (frame.op === "presence") return frame.room === state.room && onPresence(frame);
  if (frame.op === "read") return onRead(frame);
  if (frame.op === "unsubscribed") return onUnsubscribed(frame);
  const waiter = state.waiting.get(frame.id);
  if (!waiter) return;
  state.waiting.delete(frame.id);
  if (frame.op === "error") waiter.reject(new Error(`${frame.code}: ${frame.message}`));
  else waiter.resolve(frame);
}

// The room was deleted, or it is private and the user was removed from it.
function onUnsubscribed(frame) {
  state.followed.delete(frame.room);
  state.rooms.delete(frame.room);
  state.order = state.order.filter((n) => n !== frame.room);
  renderRooms();
  if (frame.room !== state.room) return;
  setStatus(`#${frame.room}: ${frame.reason}`);
  const next = state.order[0] ?? state.entryRoom;
  if (next !== frame.room) openRoom(next).catch(() => {});
}

async function enter() {
  await request("auth", { user: state.user });
  await request("create_room", { room: state.entryRoom });
  await request("join", { room: state.entryRoom });
  // The room open before a reconnect; else the one the address names; else the entry room.
  const target = state.room || roomInHash() || state.entryRoom;
  await refreshRooms(target);
  if (target === state.room && state.rooms.has(target)) return loadOpenRoom(state.opening);
  if (!(await openRoom(target)) && target !== state.entryRoom) await openRoom(state.entryRoom);
}

function connect() {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  const ws = new WebSocket(`${scheme}//${location.host}/ws`);
  state.ws = ws;
  state.followed = new Set();
  setStatus("connecting…");
  ws.onmessage = onFrame;
  ws.onopen = () => {
    enter().then(() => {
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

// ---- Controls -----------------------------------------------------------------------

function closeDrawer() {
  $("rooms-nav").classList.remove("open");
  $("rooms-toggle").setAttribute("aria-expanded", "false");
}

$("rooms-toggle").addEventListener("click", () => {
  const open = $("rooms-nav").classList.toggle("open");
  $("rooms-toggle").setAttribute("aria-expanded", String(open));
});
$("rooms-close").addEventListener("click", closeDrawer);
document.addEventListener("keydown", (e) => { if (e.key === "Escape") closeDrawer(); });
document.addEventListener("click", (e) => {  // a click beside the drawer folds it
  if (!e.target.closest("#rooms-nav, #rooms-toggle")) closeDrawer();
});
$("rooms").addEventListener("click", (e) => { if (e.target.closest("a")) closeDrawer(); });

window.addEventListener("hashchange", () => {
  const name = roomInHash();
  if (!name || name === state.room || !connected()) return;
  $("room-error").textContent = "";
  openRoom(name).catch(() => {});
});

$("room-form").addEventListener("submit", (e) => {
  e.preventDefault();
  const name = $("new-room").value.trim();
  const create = e.submitter?.value === "create";
  if (!name || !connected()) return;
  $("room-error").textContent = "";
  (async () => {
    if (create && !(await request("create_room", { room: name })).created)
      throw new Error(`#${name} exists already: join it`);
    await request("join", { room: name });
    await refreshRooms(name);
    $("new-room").value = "";
    if (name !== state.room) await openRoom(name);
  })().catch((err) => { $("room-error").textContent = err.message; });
});

$("messages").addEventListener("scroll", scheduleMarkRead, { passive: true });
window.addEventListener("resize", scheduleMarkRead);
window.addEventListener("pagehide", markRead);
document.addEventListener("visibilitychange", () => {
  if (document.visibilityState !== "visible") return;
  scheduleMarkRead();
  scheduleRefresh();  // rooms joined elsewhere, and rooms past the followed limit
});

$("enter").addEventListener("submit", (e) => {
  e.preventDefault();
  state.user = $("user").value.trim();
  state.entryRoom = $("room").value.trim();
  if (!state.user || !state.entryRoom) return;
  history.replaceState(null, "",
    `?user=${encodeURIComponent(state.user)}&room=${encodeURIComponent(state.entryRoom)}${location.hash}`);
  $("enter").hidden = true;
  $("chat").hidden = false;
  $("rooms-toggle").hidden = false;
  connect();
});

// The members of `room` that `body` names as @name: its mentions (docs/PROTOCOL.md 4.7),
// counted for each of them until they read it. A name that is no member is plain text.
async function mentionsIn(body, room) {
  const named = new Set([...body.matchAll(/@([^\s@]+)/g)].map((m) => m[1].replace(/[.,:;!?)]+$/, "")));
  if (!named.size) return [];
  const reply = await request("members", { room });
  return (reply.members ?? []).filter((u) => named.has(u) && u !== state.user);
}

$("compose").addEventListener("submit", async (e) => {
  e.preventDefault();
  const body = $("text").value;
  const room = state.room;
  if (!body || !connected()) return;
  const cmid = crypto.randomUUID();
  try {
    const mentions = await mentionsIn(body, room);
    await request("publish", mentions.length ? { room, cmid, body, mentions } : { room, cmid, body });
    if ($("text").value === body) $("text").value = "";
  } catch (err) {
    setStatus(`not sent: ${err.message}`);
  }
});

$("text").addEventListener("input", () => {
  const now = Date.now();
  if (now - state.lastTyping < TYPING_EVERY_MS || !connected()) return;
  state.lastTyping = now;
  request("typing", { room: state.room }).catch(() => {});
});

// ?user=ann&room=general enters at once (and survives a reload); #room opens that room.
const params = new URLSearchParams(location.search);
if (params.get("user") && params.get("room")) {
  $("user").value = params.get("user");
  $("room").value = params.get("room");
  $("enter").requestSubmit();
}
