// Switchboard web chat: one WebSocket to the bridge (docs/PROTOCOL.md section 10),
// JSON text frames. Shows each message once, in seq order: after a reconnect it
// subscribes from the last seq it knows, and the bridge fills the gap from history.
//
// Bridges: `?bridges=` lists a cluster's nodes (README, "In front of a cluster"); the page
// uses one at a time and, when it closes or cannot be reached, moves to the next one
// round robin, with the same backoff. A reconnect to another node is a reconnect like
// any other: rooms resume from the last seq shown, the outbox resends with the same
// cmids, so nothing is lost and nothing is shown or stored twice.
//
// Read state (docs/PROTOCOL.md 4.5, 4.9.1): the room list comes from `rooms {mine}`
// summaries. Every room of the list is followed on the same connection (the open one
// with presence, the others without), from the last seq the summary gave, so each
// message that arrives counts once towards its room's badge: seqs are gapless, so
// unread = last seq - read marker, exact. Pushed `read` frames move the marker when
// any tab of the user marks a room read.
//
// The open room is a window of at most WINDOW_MAX consecutive messages [lo, hi] of the
// room. Scrolling near its top asks `history {before: lo}`, near its bottom `history
// {after: hi}`, and the far end is trimmed, so the page stays small however far back
// one reads. `tip` is the newest seq the page knows of; while hi < tip the window is
// detached from the live end and live messages wait below it.
//
// Membership (docs/PROTOCOL.md 4.4, 4.11): a room made private from the room form is
// seen by its members only; its owners add members by name from the open room; Leave
// (confirmed) takes the room out of the list, and the page goes to the user's room of
// newest activity, or back to the entry screen when none is left.
//
// Sending: each message gets a cmid and sits in the outbox (shown under the messages)
// as queued, pending or failed until the node acknowledges it; a resend, after a
// reconnect or by the Retry button, uses the same cmid, so the node stores it once.
//
// Threads (docs/PROTOCOL.md 4.7.3): a message with `thread` belongs to the thread of
// that root. The room's timeline keeps it as an empty item (as an edit's entry: the
// window stays consecutive) and shows under the root "N replies", which opens the
// thread panel: the root and `history {thread}`, live replies appended, a composer that
// publishes with `thread`. The root's count comes from history and is counted on by the
// page as replies arrive (the node does not send the root again).
"use strict";

const $ = (id) => document.getElementById(id);
const PAGE = 100;               // messages per history page
// The first page of a room is small, so that it is on screen at once; the view fills
// from history right after. (A reply of more than about 4 KB takes some 40 ms more:
// the bridge's sockets have Nagle's algorithm on, and the browser delays its ACK.)
const FIRST_PAGE = 20;
const WINDOW_MAX = 400;         // messages kept in the page at most
const LOAD_MARGIN_PX = 1200;    // load the next page when the view is this close to an end
const READ_CONTEXT = 10;        // read messages shown above the first unread one
const TYPING_EVERY_MS = 2000;   // at most one typing notice this often
const MARK_READ_AFTER_MS = 300; // one mark_read per burst of messages seen or scrolls
const REFRESH_AFTER_MS = 200;   // one `rooms` request per burst of reasons to ask
const SEND_TIMEOUT_MS = 10000;  // a publish with no answer for this long is marked failed
const RETRY_MAX_MS = 4000;      // reconnects: 0.25 s, doubling up to this
const UNAVAILABLE_FOR_MS = 30000; // a publish answered `unavailable` (a failover) is resent this long
const CONNECT_TIMEOUT_MS = 5000;  // a WebSocket not open by then is given up: the next bridge
const PING_EVERY_MS = 15000;      // an open connection is pinged this often...
const PING_TIMEOUT_MS = 10000;    // ...and given up when the ping is not answered within this
const MAX_FOLLOWED = 128;       // rooms one connection may follow (the bridge's limit)
const PREVIEW_CHARS = 100;      // as the node's summaries (100 bytes there)
const NOTIFY_CHARS = 200;
const TITLE = document.title;
const TOKEN_KEY = "switchboard-token";

const state = {
  user: "", token: "", room: "", ws: null, nextId: 1, waiting: new Map(),
  bridges: [],          // the WebSocket URLs the page may use (`?bridges=`, else its own origin's)
  bridge: 0,            // the index of the one in use, or tried next
  drop: () => {},       // gives up the connection in use (the node stopped answering)
  entryRoom: "",        // the room of the enter form: created and joined at each connect
  ready: false,         // authenticated, and the open room entered, on this connection
  stopped: false,       // sign-in refused: no more reconnects
  tip: 0,               // the newest seq known of the open room
  win: { lo: 0, hi: 0, count: 0, older: false, firstSeq: 0, gen: 0 },  // the messages shown (see above)
  loading: false,       // a page of history is on its way
  newBelow: 0,          // messages that arrived below the view
  blocked: false,       // the open room could not be opened (a message says why)
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
  outbox: [],           // { cmid, room, body, mentions, state, error, li, timer }
  sending: Promise.resolve(),  // sends go one after another, in the order typed
  myStatus: { status: "online", text: "" },
  members: [],          // the open room's members: { user, role }, as `members` gave them
  threads: new Map(),   // the open room's thread roots: seq -> { replies, lastReply, repliers }
  thread: { root: 0 },  // the open thread panel (root 0: none): { root, rootDay, lo, hi, older, loading, shown, early, failed }
};

class RequestError extends Error {
  constructor(code, message) {
    super(message);
    this.code = code;
  }
}

function setStatus(text, live) {
  $("status").textContent = text;
  $("status").classList.toggle("live", !!live);
}

const connected = () => state.ws?.readyState === WebSocket.OPEN;

function request(op, fields = {}) {
  if (!connected()) return Promise.reject(new RequestError("disconnected", "not connected"));
  const id = state.nextId++;
  state.ws.send(JSON.stringify({ op, id, ...fields }));
  return new Promise((resolve, reject) => state.waiting.set(id, { resolve, reject }));
}

function el(tag, className, text) {
  const e = document.createElement(tag);
  if (className) e.className = className;
  if (text !== undefined) e.textContent = text;
  return e;
}

// ---- The room list ----------------------------------------------------------------

const unread = (r) => Math.max(0, r.lastSeq - r.readSeq);

// Merges a summary into what the page knows. Seqs and markers only grow, so a summary
// and the frames that crossed it on the wire merge in any order.
function mergeSummary(s) {
  const r = state.rooms.get(s.room) ?? { lastSeq: 0, readSeq: 0, markSent: 0, lastTs: 0, lastUser: "", preview: "" };
  r.role = s.role;
  r.private = s.private === true;
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
  setCompose();
  await followRooms(except);
}

function scheduleRefresh() {
  clearTimeout(state.refreshTimer);
  state.refreshTimer = setTimeout(() => {
    if (!state.ready) return;
    refreshRooms().then(() => {  // the room shown as blocked may be the user's by now
      if (state.blocked && state.rooms.has(state.room)) openRoom(state.room).catch(() => {});
    }).catch(() => {});
  }, REFRESH_AFTER_MS);
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
  li = el("li");
  li.dataset.room = name;
  const link = el("a");
  link.href = `#${encodeURIComponent(name)}`;
  const mention = el("span", "mention", "@");
  mention.title = "you were mentioned";
  link.append(el("span", "name", `# ${name}`), mention, el("span", "badge"), el("span", "preview"));
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
    li.querySelector(".name").textContent = `${r.private ? "🔒" : "#"} ${name}`;
    li.querySelector(".name").title = r.private ? "private: only its members see it" : "";
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

// A message of any followed room: its badge, preview and place in the list. True if
// it is new to the page.
function noteMessage(m) {
  const r = state.rooms.get(m.room);
  if (!r) return false;
  const fresh = m.seq > r.lastSeq;  // a resumed subscription may repeat some
  if (fresh) {
    // As the node's summaries: an edit shows its text, a delete or a reaction says so.
    const text = m.kind === "delete" ? "deleted a message" : m.kind === "react" ? `${m.on ? "reacted" : "took back"} ${m.key}` : m.body;
    Object.assign(r, { lastSeq: m.seq, lastTs: m.ts, lastUser: m.user, preview: previewOf(text) });
    state.order = [m.room, ...state.order.filter((n) => n !== m.room)];
    // A message naming the user in `mentions` counts as the node counts it.
    if (m.user !== state.user && mentionsMe(m)) r.mentions = (r.mentions ?? 0) + 1;
  }
  if (m.user === state.user) r.readSeq = Math.max(r.readSeq, m.seq);  // publishing moves the sender's marker
  if (!unread(r)) r.mentions = 0;
  renderRooms();
  return fresh;
}

const mentionsMe = (m) => Array.isArray(m.mentions) && m.mentions.includes(state.user);

// The start of a text, as the node's summaries give it (never half a surrogate pair).
const previewOf = (text) => text.slice(0, PREVIEW_CHARS).replace(/[\uD800-\uDBFF]$/, "");

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

// ---- Desktop notifications ------------------------------------------------------------

const canNotify = () => "Notification" in window;

function updateNotifyButton() {
  $("notify").hidden = !canNotify() || Notification.permission !== "default" || $("chat").hidden;
}

// A message new to the page while the tab is hidden: one notification per room at a
// time (the tag replaces the previous one), saying so when it mentions the user.
function notify(m) {
  if (!canNotify() || Notification.permission !== "granted") return;
  if (document.visibilityState !== "hidden" || m.user === state.user || m.kind) return;
  const title = mentionsMe(m) ? `${m.user} mentioned you in #${m.room}` : `${m.user} in #${m.room}`;
  try {
    const n = new Notification(title, { body: m.body.slice(0, NOTIFY_CHARS), tag: `switchboard:${m.room}` });
    n.onclick = () => {
      window.focus();
      location.hash = `#${encodeURIComponent(m.room)}`;
      n.close();
    };
  } catch {
    // Some browsers allow notifications from a service worker only.
  }
}

// ---- Messages ---------------------------------------------------------------------------

const timeFormat = new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit" });
const fullFormat = new Intl.DateTimeFormat(undefined, { dateStyle: "full", timeStyle: "medium" });
const dayFormat = new Intl.DateTimeFormat(undefined, { weekday: "long", year: "numeric", month: "long", day: "numeric" });

function dayKey(ts) {
  const d = new Date(ts);
  return `${d.getFullYear()}-${d.getMonth() + 1}-${d.getDate()}`;
}

function dayLabel(ts) {
  const key = dayKey(ts);
  const today = new Date();
  if (key === dayKey(today)) return "Today";
  today.setDate(today.getDate() - 1);
  if (key === dayKey(today)) return "Yesterday";
  return dayFormat.format(ts);
}

// http(s) links in a body. Everything else stays text: the body is only ever added as
// text nodes, and links are <a> elements made here, never markup.
const LINK = /\bhttps?:\/\/[^\s<>"]+/gi;

// Punctuation after a link is the sentence's, and so is a closing bracket it did not open.
function trimLink(text) {
  const count = (c) => text.split(c).length - 1;
  for (;;) {
    const last = text.at(-1);
    const closes = { ")": "(", "]": "[" }[last];
    if (".,;:!?'*".includes(last) || (closes && count(closes) < count(last))) text = text.slice(0, -1);
    else return text;
  }
}

function fillBody(target, text) {
  let at = 0;
  if (text.includes("://")) {
    for (const match of text.matchAll(LINK)) {
      const raw = trimLink(match[0]);
      let url;
      try {
        url = new URL(raw);
      } catch {
        continue;
      }
      if (url.protocol !== "http:" && url.protocol !== "https:") continue;
      if (match.index > at) target.append(text.slice(at, match.index));
      const a = el("a", "", raw);
      a.href = url.href;
      a.rel = "noopener noreferrer";
      a.target = "_blank";
      target.append(a);
      at = match.index + raw.length;
    }
  }
  if (at < text.length) target.append(text.slice(at));
}

// Edits, deletes and reactions (docs/PROTOCOL.md 4.7.2) are entries of the room with
// seqs of their own: each takes its place in the window as an empty item (the window
// stays consecutive), and a message shows its state as history gives it (its latest
// body, "edited", a tombstone, reaction counts with the user's own marked). An entry
// that arrives while its message is shown has the message read again.
const REACTIONS = ["👍", "❤️", "😂", "🎉", "😮", "😢"];

// The message each item shows (as it was last read), for replies that quote it and the
// thread panel that opens on it.
const shownMessage = new WeakMap();

// An item of the room's timeline, or (`inPanel`) of the thread panel. In the timeline a
// message of a thread is an empty item, as an entry is: the panel shows it.
function messageItem(m, inPanel = false) {
  const li = el("li", "msg");
  li.dataset.seq = m.seq;
  li.dataset.day = dayKey(m.ts);
  li.dataset.ts = m.ts;
  if (inPanel ? m.kind : !takesRoom(m)) {  // nothing of its own to show here
    li.classList.add("entry");
    li.setAttribute("aria-hidden", "true");
    return li;
  }
  if (m.user === state.user) li.classList.add("mine");
  if (mentionsMe(m)) li.classList.add("mentions-me");
  fillMessage(li, m, inPanel);
  if (m.user === state.user) confirmShown(m.cmid);
  return li;
}

// The user, body, time, marks, reactions and actions of message `m` into its item; in
// the timeline, a root's thread summary under it.
function fillMessage(li, m, inPanel = false) {
  shownMessage.set(li, m);
  const body = el("span", "body");
  if (m.deleted) {
    li.classList.add("deleted");
    body.textContent = "message deleted";
  } else {
    fillBody(body, m.body);
  }
  const time = el("time", "time", timeFormat.format(m.ts));
  time.dateTime = new Date(m.ts).toISOString();
  time.title = fullFormat.format(m.ts);
  li.replaceChildren(el("span", "user", m.user), body, time);
  if (m.reply_to) li.prepend(replyLine(m.reply_to));
  if (m.edited_ts && !m.deleted) {
    const mark = el("span", "edited", "(edited)");
    mark.title = `edited ${fullFormat.format(m.edited_ts)}`;
    li.append(mark);
  }
  if (!m.deleted) li.append(...messageTools(li, m, inPanel));
  if (!inPanel && !m.thread) {  // a deleted root keeps its thread
    noteRoot(m);
    showSummary(li);
  }
}

// A message's reaction chips and its actions (react, reply in thread, edit, delete).
function messageTools(li, m, inPanel) {
  const reactions = el("span", "reactions");
  const mine = new Set(m.mine ?? []);
  for (const [key, count] of Object.entries(m.reactions ?? {})) {
    const chip = el("button", mine.has(key) ? "reaction mine" : "reaction", `${key} ${count}`);
    chip.type = "button";
    chip.dataset.key = key;
    chip.setAttribute("aria-pressed", String(mine.has(key)));
    chip.addEventListener("click", () => changeMessage(m, "react", { key, on: !mine.has(key) }));
    reactions.append(chip);
  }
  const actions = el("span", "actions");
  const add = el("button", "act react", "☺+");
  add.type = "button";
  add.title = "React";
  add.addEventListener("click", () => togglePalette(li, m, mine));
  actions.append(add);
  if (!inPanel && !m.thread) {  // threads do not nest: a reply in one is answered in it
    const reply = el("button", "reply-act", "Reply in thread");
    reply.type = "button";
    reply.addEventListener("click", () => openThread(m, true));
    actions.append(reply);
  }
  const owner = state.rooms.get(state.room)?.role === "owner";
  if (m.user === state.user) {
    const edit = el("button", "act edit", "Edit");
    edit.type = "button";
    edit.addEventListener("click", () => {
      const text = window.prompt("Edit your message", m.body);
      if (text !== null && text.trim() && text !== m.body) changeMessage(m, "edit", { body: text });
    });
    actions.append(edit);
  }
  if (m.user === state.user || owner) {
    const remove = el("button", "act delete", "Delete");
    remove.type = "button";
    remove.addEventListener("click", () => {
      if (window.confirm("Delete this message for everyone? Its text is erased.")) changeMessage(m, "delete", {});
    });
    actions.append(remove);
  }
  return [reactions, actions];
}

// The reaction keys to pick from, under message item `li`.
function togglePalette(li, m, mine) {
  const open = li.querySelector(".palette");
  if (open) return open.remove();
  const palette = el("span", "palette");
  for (const key of REACTIONS) {
    const pick = el("button", "pick", key);
    pick.type = "button";
    pick.addEventListener("click", () => {
      palette.remove();
      changeMessage(m, "react", { key, on: !mine.has(key) });
    });
    palette.append(pick);
  }
  li.append(palette);
}

// Sends an edit, delete or react of message `m`; the change shows when its entry comes
// back on the room's stream (refreshEntryTarget).
async function changeMessage(m, kind, fields) {
  try {
    await request("publish", { room: m.room, cmid: crypto.randomUUID(), kind, target: m.seq, ...fields });
  } catch (e) {
    setStatus(`could not ${kind} the message: ${e.message}`, connected());
  }
}

// An entry arrived: the message it changes, if shown in `list` (the room's timeline, or
// the thread panel), is read again as it is now.
async function refreshEntryTarget(entry, list = $("messages")) {
  const li = list.querySelector(`li.msg[data-seq="${entry.target}"]`);
  if (!li || li.classList.contains("entry")) return;
  const room = state.room;
  try {
    const page = await request("history", { room, after: entry.target - 1, limit: 1 });
    const m = page.messages[0];
    if (room !== state.room || !m || m.seq !== entry.target || !li.isConnected) return;
    const inPanel = list === $("thread");
    li.classList.remove("deleted");
    fillMessage(li, m, inPanel);
    resolveReplies(li);
    if (inPanel) setThreadCompose();  // a deleted root takes no more replies
  } catch {
    // Shown as it was; the next page read of it shows it as it is.
  }
}

// ---- Replies and threads ----------------------------------------------------------------

// "↪ replying to bob: text" above a message that answers another; filled in once the
// message it answers is on the page (resolveReplies).
function replyLine(seq) {
  const line = el("span", "reply-to", "↪ replying to an earlier message");
  line.dataset.target = seq;
  line.dataset.pending = "";
  return line;
}

// The message with `seq` as some item of the page shows it, or null.
function findShown(seq) {
  for (const li of document.querySelectorAll(`li.msg[data-seq="${seq}"]`)) {
    const m = shownMessage.get(li);
    if (m) return m;
  }
  return null;
}

// Fills the reply lines under `container` whose message is on the page now.
function resolveReplies(container) {
  for (const line of container.querySelectorAll(".reply-to[data-pending]")) {
    const m = findShown(Number(line.dataset.target));
    if (!m) continue;
    line.replaceChildren("↪ replying to ", el("span", "reply-user", m.user), `: ${m.deleted ? "message deleted" : previewOf(m.body)}`);
    delete line.dataset.pending;
  }
}

const repliesText = (n) => (n === 1 ? "1 reply" : `${n} replies`);

// A root as history gives it: its summary, unless the page counted further already.
function noteRoot(m) {
  if (!m.replies) return;
  const known = state.threads.get(m.seq);
  if (!known || m.last_reply >= known.lastReply)
    state.threads.set(m.seq, { replies: m.replies, lastReply: m.last_reply, repliers: m.repliers ?? [] });
}

// A message of a thread of the open room, live or from a page: its root counts it, once
// (a root read after it counted it already, and a resumed subscription may repeat it).
// A root not shown gets its summary from history when it is.
function noteReply(m) {
  const t = state.threads.get(m.thread) ?? { replies: 0, lastReply: 0, repliers: [] };
  if (m.seq <= t.lastReply) return;
  t.replies++;
  t.lastReply = m.seq;
  if (!t.repliers.includes(m.user) && t.repliers.length < 10) t.repliers = [...t.repliers, m.user];
  state.threads.set(m.thread, t);
  const li = $("messages").querySelector(`li.msg[data-seq="${m.thread}"]`);
  if (li && !li.classList.contains("entry")) showSummary(li);
  if (m.thread === state.thread.root) renderThreadCount();
}

// "N replies" (it opens the thread) and who replied, under a root of the timeline.
function showSummary(li) {
  const t = state.threads.get(Number(li.dataset.seq));
  let box = li.querySelector(".thread-summary");
  if (!t?.replies) return box?.remove();
  if (!box) {
    box = el("div", "thread-summary");
    li.append(box);
  }
  const open = el("button", "thread-link", repliesText(t.replies));
  open.type = "button";
  open.addEventListener("click", () => openThread(shownMessage.get(li)));
  box.replaceChildren(open, el("span", "repliers", t.repliers.join(", ")));
}

// The thread panel: the root, then its thread's messages as `history {thread}` pages
// them (older ones on demand), then those that arrive. `focus`: to write a reply.
function openThread(root, focus = false) {
  if (!root) return;
  if (state.thread.root === root.seq) {
    if (focus) $("thread-text").focus();
    return;
  }
  closeThread();
  const t = state.thread = {
    root: root.seq, rootDay: dayKey(root.ts), lo: root.seq, hi: root.seq, older: false,
    loading: false, shown: false, early: [], failed: "",
  };
  $("thread-root").replaceChildren(messageItem(root, true));
  resolveReplies($("thread-root"));
  $("thread-messages").replaceChildren();
  $("thread-note").textContent = "";
  $("thread").hidden = false;
  $("chat").classList.add("threaded");
  closeDrawers();
  renderThreadCount();
  setThreadCompose();
  renderOutbox();
  if (focus) $("thread-text").focus();
  loadThread(t, false);
}

function closeThread() {
  const root = state.thread.root;
  if (!root) return;
  state.thread = { root: 0 };
  $("thread").hidden = true;
  $("chat").classList.remove("threaded");
  $("thread-root").replaceChildren();
  $("thread-messages").replaceChildren();
  state.outbox.filter((i) => i.thread === root && i.state === "sent").forEach(dropItem);  // stored: in the thread
  renderOutbox();
}

// A page of the open thread: its newest, or (`older`) the one before what is shown.
// Live messages of the thread wait for the newest page (t.early), which may hold them.
async function loadThread(t, older) {
  if (t.loading) return;
  t.loading = true;
  renderThreadCount();
  const s = $("thread-scroller");
  const fromBottom = s.scrollHeight - s.scrollTop;
  try {
    const page = await request("history", { room: state.room, thread: t.root, limit: PAGE, ...(older ? { before: t.lo } : {}) });
    if (t !== state.thread) return;
    let replies = page.messages;
    if (replies[0]?.seq === t.root) {  // the root as it is now, and the thread's start
      const root = replies.shift();
      $("thread-root").replaceChildren(messageItem(root, true));
      noteRoot(root);
      const li = $("messages").querySelector(`li.msg[data-seq="${root.seq}"]`);
      if (li && !li.classList.contains("entry")) showSummary(li);
      t.older = false;
    } else {
      t.older = page.more;
    }
    if (older) {
      if (replies.length) prependRun($("thread-messages"), run(replies, t.rootDay, true), replies);
      s.scrollTop = s.scrollHeight - fromBottom;
    } else {
      appendReplies(replies);
      s.scrollTop = s.scrollHeight;
    }
    if (replies.length) t.lo = replies[0].seq;
    t.failed = "";
    $("thread-note").textContent = "";
    if (!older) {
      t.shown = true;
      for (const m of t.early.splice(0)) onThreadMessage(m);
    }
  } catch (err) {
    if (t !== state.thread) return;
    t.failed = older ? "older" : "newest";  // asked again once connected (connect)
    $("thread-note").textContent = err.code === "disconnected"
      ? "Not connected: the thread is read again once the connection is back."
      : `Cannot read this thread: ${err.message}`;
  } finally {
    if (t === state.thread) {
      t.loading = false;
      resolveReplies($("thread"));
      renderThreadCount();
      setThreadCompose();
    }
  }
}

// Messages of the open thread, ascending, below those shown (those shown already are not).
function appendReplies(messages) {
  const t = state.thread;
  const fresh = messages.filter((m) => m.seq > t.hi);
  if (!fresh.length) return;
  const s = $("thread-scroller");
  const stick = distanceToBottom(s) < 8 || fresh.some((m) => m.user === state.user);
  const list = $("thread-messages");
  list.append(run(fresh, lastMessage(list)?.dataset.day ?? t.rootDay, true));
  t.hi = fresh.at(-1).seq;
  resolveReplies(list);
  if (stick) s.scrollTop = s.scrollHeight;
}

// A live message of the open room, for the threads: its root counts it; the open thread
// shows it, or the change an entry makes to a message it shows.
function onThreadMessage(m) {
  if (m.thread) noteReply(m);
  const t = state.thread;
  if (!t.root || !(m.thread === t.root || m.kind)) return;
  if (!t.shown) return t.early.push(m);
  if (m.kind) refreshEntryTarget(m, $("thread"));
  else appendReplies([m]);
}

// "N replies" between the root and its thread in the panel; "Show older replies".
function renderThreadCount() {
  const t = state.thread;
  const n = state.threads.get(t.root)?.replies ?? 0;
  $("thread-count").textContent = n ? repliesText(n) : "No replies yet";
  $("thread-older").hidden = !t.older;
  $("thread-older").disabled = t.loading;
}

// The thread's composer: as the room's, and closed under a deleted root.
function setThreadCompose() {
  const gone = $("thread-root").querySelector("li.deleted") !== null;
  const readOnly = state.rooms.get(state.room)?.role === "reader" || state.blocked;
  $("thread-text").disabled = $("thread-send").disabled = readOnly || gone || !state.thread.root;
  $("thread-text").placeholder = readOnly ? "You may read this thread, not reply in it"
    : gone ? "The message was deleted: its thread takes no more replies" : "Reply in thread…";
}

function daySeparator(ts, key) {
  const li = el("li", "day", dayLabel(ts));
  li.dataset.day = key;
  li.setAttribute("role", "separator");
  return li;
}

// The open room's messages, a day separator above the first of each day, the "new
// messages" divider, and the room's start when the window reaches it.
function firstMessage() {
  return $("messages").querySelector("li.msg");
}

function lastMessage(list = $("messages")) {
  let e = list.lastElementChild;
  while (e && !e.classList.contains("msg")) e = e.previousElementSibling;
  return e;
}

// The day separator that stands above a message (the divider may be between them).
function separatorOf(li) {
  let e = li.previousElementSibling;
  if (e?.classList.contains("divider")) e = e.previousElementSibling;
  return e?.classList.contains("day") ? e : null;
}

// `messages` (ascending, consecutive) as list items, with a separator where the day
// changes; `day` is the day of the message above them (null: a separator first).
function run(messages, day, inPanel = false) {
  const fragment = document.createDocumentFragment();
  for (const m of messages) {
    const li = messageItem(m, inPanel);
    if (li.dataset.day !== day) fragment.append(daySeparator(m.ts, li.dataset.day));
    day = li.dataset.day;
    fragment.append(li);
  }
  return fragment;
}

function startItem() {
  // A room whose retention removed its oldest messages says so (history says where it starts).
  if (state.win.firstSeq > 1)
    return el("li", "start truncated", `Older messages of #${state.room} were removed: its history starts here.`);
  return el("li", "start", `This is the start of #${state.room}.`);
}

// A history reply that asked for removed messages says where the room starts now.
function noteTruncation(page) {
  if (page.truncated) state.win.firstSeq = page.first_seq;
}

// Adds older messages above the window: those just before lo, consecutive.
function prependMessages(messages, older) {
  const w = state.win;
  const list = $("messages");
  const page = [];
  let next = w.lo ? w.lo - 1 : messages.at(-1)?.seq;
  for (let i = messages.length - 1; i >= 0; i--) {
    if (messages[i].seq > next) continue;
    if (messages[i].seq < next) break;  // a gap: never shown across
    page.unshift(messages[i]);
    next--;
  }
  list.querySelector(".start")?.remove();
  if (page.length) {
    prependRun(list, run(page, null), page);
    resolveReplies(list);
    w.lo = page[0].seq;
    w.hi ||= page.at(-1).seq;
    w.count += page.length;
  }
  w.older = older && (page.length > 0 || messages.length === 0);  // a page that does not fit ends it
  if (!w.older) list.prepend(startItem());
  placeDivider();
}

// Puts `fragment`, the items of older messages `page`, at the top of `list`: the first
// message below keeps no separator of a day the page ends with.
function prependRun(list, fragment, page) {
  const oldFirst = list.querySelector("li.msg");
  list.prepend(fragment);
  if (oldFirst && oldFirst.dataset.day === dayKey(page.at(-1).ts)) separatorOf(oldFirst)?.remove();
}

// Adds newer messages below the window: those just after hi, consecutive. Returns how
// many it added.
function appendMessages(messages) {
  const w = state.win;
  const page = [];
  let next = w.hi ? w.hi + 1 : messages[0]?.seq;
  for (const m of messages) {
    if (m.seq < next) continue;
    if (m.seq > next) break;
    page.push(m);
    next++;
  }
  if (!page.length) return 0;
  const last = lastMessage();
  // Entries whose message was shown before them: that message is read again as it is now
  // (a message in the same page comes as it is already).
  const stale = page.filter((m) => m.kind && m.target >= w.lo && m.target <= w.hi);
  $("messages").append(run(page, last ? last.dataset.day : null));
  for (const m of stale) refreshEntryTarget(m);
  for (const m of page) if (m.thread) noteReply(m);
  resolveReplies($("messages"));
  w.lo ||= page[0].seq;
  w.hi = page.at(-1).seq;
  w.count += page.length;
  state.tip = Math.max(state.tip, w.hi);
  placeDivider();
  return page.length;
}

// Removes the n oldest messages of the window (and what stands above them).
function trimTop(n) {
  const list = $("messages");
  const w = state.win;
  let keep = firstMessage();
  for (let i = 0; i < n && keep; i++) {
    keep = keep.nextElementSibling;
    while (keep && !keep.classList.contains("msg")) keep = keep.nextElementSibling;
  }
  if (!keep) return;
  const first = separatorOf(keep) ?? (keep.previousElementSibling?.classList.contains("divider") ? keep.previousElementSibling : keep);
  const range = document.createRange();
  range.setStartBefore(list.firstChild);
  range.setEndBefore(first);
  range.deleteContents();
  if (!separatorOf(keep)) list.prepend(daySeparator(Number(keep.dataset.ts), keep.dataset.day));
  w.count -= n;
  w.lo = Number(keep.dataset.seq);
  w.older = true;
}

// Removes the n newest messages of the window (and what stands below them).
function trimBottom(n) {
  const list = $("messages");
  const w = state.win;
  let keep = lastMessage();
  for (let i = 0; i < n && keep; i++) {
    keep = keep.previousElementSibling;
    while (keep && !keep.classList.contains("msg")) keep = keep.previousElementSibling;
  }
  if (!keep) return;
  const range = document.createRange();
  range.setStartAfter(keep);
  range.setEndAfter(list.lastChild);
  range.deleteContents();
  w.count -= n;
  w.hi = Number(keep.dataset.seq);
}

// The first message at or below the top of the view, found by halving (separators
// and the start line may go when a page is added; messages stay).
function anchorItem() {
  const items = $("messages").children;
  const top = $("scroller").scrollTop;
  let low = 0;
  let high = items.length - 1;
  let found = null;
  while (low <= high) {
    const mid = (low + high) >> 1;
    if (items[mid].offsetTop + items[mid].offsetHeight > top) {
      found = items[mid];
      high = mid - 1;
    } else {
      low = mid + 1;
    }
  }
  while (found && !found.classList.contains("msg")) found = found.nextElementSibling;
  return found;
}

// Makes `change` to the list without moving what the user looks at.
function keepPosition(change) {
  const scroller = $("scroller");
  const anchor = anchorItem();
  const before = anchor?.getBoundingClientRect().top;
  change();
  if (anchor?.isConnected) scroller.scrollTop += anchor.getBoundingClientRect().top - before;
}

const distanceToBottom = (s) => s.scrollHeight - s.scrollTop - s.clientHeight;
const attached = () => state.win.hi >= state.tip;

// Loads the next page towards an end the view is close to, one page at a time.
async function loadMore() {
  if (state.loading || !state.entered || state.blocked || !state.ready) return;
  const s = $("scroller");
  const w = state.win;
  let direction;
  if (w.older && s.scrollTop < LOAD_MARGIN_PX) direction = "older";
  else if (!attached() && distanceToBottom(s) < LOAD_MARGIN_PX) direction = "newer";
  else return;
  const gen = w.gen;
  const room = state.room;
  state.loading = true;
  try {
    const fields = direction === "older" ? { before: w.lo, limit: PAGE } : { after: w.hi, limit: PAGE };
    const page = await request("history", { room, ...fields });
    if (gen !== state.win.gen) return;
    noteTruncation(page);
    keepPosition(() => {
      if (direction === "older") {
        prependMessages(page.messages, page.more);
        if (w.count > WINDOW_MAX) trimBottom(w.count - WINDOW_MAX);
      } else {
        const r = state.rooms.get(room);
        for (const m of page.messages) if (r && m.seq > r.lastSeq) noteMessage({ ...m, room });
        appendMessages(page.messages);
        if (w.count > WINDOW_MAX) trimTop(w.count - WINDOW_MAX);
      }
    });
  } catch {
    return;  // disconnected: the next scroll, or the reconnect, asks again
  } finally {
    if (gen === state.win.gen) state.loading = false;
  }
  updateJump();
  scheduleMarkRead();
  loadMore();
}

// The button back to the newest messages, while the view is away from them.
function updateJump() {
  const s = $("scroller");
  const away = !state.blocked && state.entered && (!attached() || distanceToBottom(s) > s.clientHeight);
  if (!away) state.newBelow = 0;
  const jump = $("jump");
  jump.hidden = !away;
  jump.textContent = state.newBelow ? `↓ ${state.newBelow} new` : "↓ Latest";
}

// Shows the newest page: scrolls there, or (detached) replaces the window with it.
async function jumpToLatest() {
  state.newBelow = 0;
  const s = $("scroller");
  if (attached()) {
    s.scrollTop = s.scrollHeight;
    updateJump();
    return;
  }
  const gen = ++state.win.gen;
  const room = state.room;
  state.loading = true;
  try {
    const page = await request("history", { room, limit: FIRST_PAGE });
    if (gen !== state.win.gen) return;
    resetWindow();
    noteTruncation(page);
    showPage(page.messages, page.more, false);
    s.scrollTop = s.scrollHeight;
  } finally {
    if (gen === state.win.gen) state.loading = false;
  }
  updateJump();
  scheduleMarkRead();
}

function resetWindow() {
  state.win = { lo: 0, hi: 0, count: 0, older: false, firstSeq: 0, gen: state.win.gen + 1 };
  state.loading = false;
  $("messages").replaceChildren();
}

// A first page into an empty window: `older` says whether messages precede it.
function showPage(messages, older, newerToo) {
  appendMessages(messages);
  prependMessages([], older);
  if (newerToo) state.tip = Math.max(state.tip, state.win.hi + 1);
}

// A message the timeline shows: not an entry, nor a reply in a thread.
const takesRoom = (m) => !m.kind && !m.thread;

// A live message of the open room: shown if it continues the window, else counted below.
function onRoomMessage(m) {
  hideTyping(m.user);
  const wasAttached = attached();
  state.tip = Math.max(state.tip, m.seq);
  if (m.seq <= state.win.hi) return;
  const s = $("scroller");
  if (!wasAttached || m.seq !== state.win.hi + 1) {
    if (takesRoom(m)) state.newBelow++;
    updateJump();
    loadMore();
    return;
  }
  const stick = distanceToBottom(s) < 8 || (m.user === state.user && takesRoom(m));
  appendMessages([m]);
  if (stick) {
    if (state.win.count > WINDOW_MAX) trimTop(state.win.count - WINDOW_MAX);
    s.scrollTop = s.scrollHeight;
  } else if (takesRoom(m)) {
    state.newBelow++;
  }
  updateJump();
  scheduleMarkRead();
}

// "New messages" above the first message past the marker the room was opened with.
function placeDivider() {
  if (state.dividerAfter === null) return;
  const list = $("messages");
  if (list.querySelector(".divider")) return;
  const first = list.querySelector(`li.msg[data-seq="${state.dividerAfter + 1}"]`);
  if (!first) return;
  const divider = el("li", "divider", "New messages");
  divider.setAttribute("role", "separator");
  list.insertBefore(divider, first);
}

// The newest message is on screen: the tab is visible and the list is scrolled to it.
// Items that take no room (entries, replies in threads) are seen with the message above.
function newestIsSeen(li) {
  if (document.visibilityState !== "visible" || $("chat").hidden) return false;
  while (li && !(li.classList.contains("msg") && !li.classList.contains("entry"))) li = li.previousElementSibling;
  if (!li) return true;
  const box = $("scroller").getBoundingClientRect();
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
  sendMarkRead(state.room, newestSeen());
}

// The open room's newest message on screen, if it is unread and not being marked yet.
function newestSeen() {
  const r = state.rooms.get(state.room);
  const li = lastMessage();
  if (!r || !li || !state.entered || !connected() || !newestIsSeen(li)) return 0;
  const seq = Number(li.dataset.seq);
  return seq > Math.max(r.readSeq, r.markSent) ? seq : 0;
}

function sendMarkRead(room, seq) {
  const r = state.rooms.get(room);
  if (!r || !seq) return;
  r.markSent = seq;
  request("mark_read", { room, seq }).then((reply) => {
    r.readSeq = Math.max(r.readSeq, reply.seq);
    r.lastSeq = Math.max(r.lastSeq, reply.seq + reply.unread);
    settleMentions(r);
    renderRooms();
  }).catch(() => { if (r.markSent === seq) r.markSent = 0; });  // asked again when next seen
}

// ---- Sending ------------------------------------------------------------------------------

const OUT_STATES = ["queued", "pending", "failed", "sent"];

function outboxItem(item) {
  const li = el("li", "msg mine out");
  li.dataset.cmid = item.cmid;
  const body = el("span", "body");
  fillBody(body, item.body);
  const retry = el("button", "retry", "Retry");
  retry.type = "button";
  retry.addEventListener("click", () => {
    item.state = "queued";
    item.unavailableSince = 0;
    send(item);
  });
  const discard = el("button", "discard", "Discard");
  discard.type = "button";
  discard.addEventListener("click", () => dropItem(item));
  li.append(el("span", "user", state.user), body, el("span", "state"), retry, discard);
  return li;
}

function updateItem(item) {
  const li = item.li;
  li.classList.remove(...OUT_STATES);
  li.classList.add(item.state);
  li.querySelector(".state").textContent = {
    queued: connected() ? "queued" : "queued: sent once the connection is back",
    pending: "sending…",
    failed: `not sent: ${item.error}`,
    sent: "sent",
  }[item.state];
  li.querySelector(".retry").hidden = li.querySelector(".discard").hidden = item.state !== "failed";
}

// The open room's outbox under its messages, and the open thread's in the thread panel.
function renderOutbox() {
  const waiting = (thread) => state.outbox.filter((i) => i.room === state.room && i.thread === thread);
  const panel = state.thread.root ? waiting(state.thread.root) : [];
  for (const [list, scroller, items] of [["outbox", "scroller", waiting(0)], ["thread-outbox", "thread-scroller", panel]]) {
    const s = $(scroller);
    const stick = distanceToBottom(s) < 8;
    $(list).replaceChildren(...items.map((i) => i.li));
    if (stick) s.scrollTop = s.scrollHeight;
  }
}

function dropItem(item) {
  clearTimeout(item.timer);
  state.outbox = state.outbox.filter((i) => i !== item);
  item.li.remove();
}

// The user's message with this cmid is shown in the room: it has left the outbox.
function confirmShown(cmid) {
  const item = state.outbox.find((i) => i.cmid === cmid);
  if (item) dropItem(item);
}

// The node stored it under `seq`: it leaves the outbox once the room shows it (at once
// if the room does not show its newest messages now).
function confirmSent(item, seq) {
  clearTimeout(item.timer);
  if (!state.outbox.includes(item)) return;
  const shownSoon = item.room === state.room && state.entered && (item.thread
    ? item.thread === state.thread.root && seq > state.thread.hi
    : attached() && seq > state.win.hi);
  if (!shownSoon) return dropItem(item);
  item.state = "sent";
  updateItem(item);
}

// A message typed in the open room, or (`thread`: its root's seq) in the open thread.
function submitMessage(body, thread = 0) {
  const item = { cmid: crypto.randomUUID(), room: state.room, thread, body, mentions: null, state: "queued", error: "" };
  item.li = outboxItem(item);
  state.outbox.push(item);
  updateItem(item);
  if (!thread && !attached()) jumpToLatest().catch(() => {});
  renderOutbox();
  const s = $(thread ? "thread-scroller" : "scroller");
  s.scrollTop = s.scrollHeight;
  send(item);
}

// Queues a send of `item` after those before it. It goes out only while connected and
// in the queued state (so a send queued twice goes once); the returned promise settles
// once the node answered, or the send failed or timed out.
function send(item) {
  updateItem(item);
  state.sending = state.sending.then(() => attempt(item)).catch(() => {});
  return state.sending;
}

function attempt(item) {
  if (item.state !== "queued" || !state.outbox.includes(item) || !state.ready) return;
  item.state = "pending";
  const mine = item.attempts = (item.attempts ?? 0) + 1;  // an earlier attempt's answer only confirms
  updateItem(item);
  return new Promise((settle) => {
    item.timer = setTimeout(() => {
      if (item.state !== "pending" || item.attempts !== mine) return;
      if (state.bridges.length > 1 && state.ws) {
        // The node stopped answering, and there are others: the page moves on, and the
        // outbox sends this again there, with its cmid.
        item.state = "queued";
        updateItem(item);
        settle();
        return state.drop("no answer");
      }
      item.state = "failed";
      item.error = "no answer from the node";
      updateItem(item);
      settle();
    }, SEND_TIMEOUT_MS);
    (async () => {
      if (item.mentions === null) item.mentions = await mentionsIn(item.body, item.room);
      const fields = { room: item.room, cmid: item.cmid, body: item.body };
      if (item.mentions.length) fields.mentions = item.mentions;
      if (item.thread) fields.thread = item.thread;
      return request("publish", fields);
    })().then((reply) => confirmSent(item, reply.seq), (err) => {
      if (!state.outbox.includes(item) || item.state !== "pending" || item.attempts !== mine) return;
      clearTimeout(item.timer);
      if (err.code === "disconnected") {
        item.state = "queued";
      } else if (err.code === "unavailable" && stillUnavailable(item)) {
        // The room's shard is between primaries (a failover), or the node did not
        // answer: the same cmid again in a moment, in its place (those typed after it
        // wait), and stored once whatever the first attempt did.
        item.state = "queued";
        updateItem(item);
        const wait = Math.min(250 * 2 ** item.unavailableTries++, RETRY_MAX_MS);
        return new Promise((resolve) => setTimeout(resolve, wait)).then(() => attempt(item));
      } else {
        item.state = "failed";
        item.error = err.code === "rate_limited" ? "too many messages at once; retry in a moment" : err.message;
      }
      updateItem(item);
    }).finally(settle);
  });
}

// Whether a publish answered `unavailable` is still resent: for UNAVAILABLE_FOR_MS from
// the first such answer, then it is marked failed (and Retry starts again).
function stillUnavailable(item) {
  if (!item.unavailableSince) {
    item.unavailableSince = Date.now();
    item.unavailableTries = 0;
  }
  return Date.now() - item.unavailableSince < UNAVAILABLE_FOR_MS;
}

// After (re)connecting: everything queued goes, in the order typed, with its cmid.
function flushOutbox() {
  for (const item of state.outbox) {
    if (item.state === "queued") send(item);
    else updateItem(item);
  }
}

// The members of `room` that `body` names as @name: its mentions (docs/PROTOCOL.md 4.7),
// counted for each of them until they read it. A name that is no member is plain text.
async function mentionsIn(body, room) {
  const named = new Set([...body.matchAll(/@([^\s@]+)/g)].map((m) => m[1].replace(/[.,:;!?)]+$/, "")));
  if (!named.size) return [];
  const reply = await request("members", { room });
  return (reply.members ?? []).filter((u) => named.has(u) && u !== state.user);
}

// ---- Presence -----------------------------------------------------------------------------

async function refreshWho() {
  const room = state.room;
  const who = await request("who", { room });
  if (room !== state.room) return;
  $("who").replaceChildren(...who.users.map((u) => {
    const li = el("li", u.status, u.user + (u.text ? ` (${u.text})` : ""));
    li.dataset.user = u.user;
    li.title = u.status;
    return li;
  }));
  setWhoStale(false);
  $("online-count").textContent = String(who.users.length);
  // The user's status as the node has it (set in another tab, too), unless being edited.
  const mine = who.users.find((u) => u.user === state.user);
  if (mine && !$("status-form").contains(document.activeElement)) {
    state.myStatus = { status: mine.status, text: mine.text ?? "" };
    $("my-status").value = mine.status;
    $("my-status-text").value = mine.text ?? "";
  }
}

// While disconnected the list is what it was when the connection went: it says so.
function setWhoStale(stale) {
  $("online").classList.toggle("stale", stale);
  $("who-note").hidden = !stale;
  $("who-note").textContent = stale ? `Not up to date: disconnected at ${timeFormat.format(Date.now())}` : "";
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
    if (e.kind === "leave" && e.user === state.user) return forgetRoom(e.room);  // left in some tab
    refreshWho().catch(() => {});
    if (e.kind === "join" || e.kind === "leave") refreshMembers().catch(() => {});
  }
}

// ---- The open room ------------------------------------------------------------------------

function roomInHash() {
  if (location.hash.startsWith("#token=")) return "";
  try {
    return decodeURIComponent(location.hash.slice(1));
  } catch {
    return "";
  }
}

function setCompose() {
  const readOnly = state.rooms.get(state.room)?.role === "reader";
  $("text").disabled = $("send").disabled = readOnly || state.blocked;
  $("text").placeholder = state.blocked ? `You cannot write in #${state.room}`
    : readOnly ? "You may read this room, not write in it" : "Write a message";
  setRoomTools();
  setThreadCompose();
}

// Empties the view for `name`, the room about to be shown.
function switchTo(name) {
  closeThread();
  state.threads = new Map();
  state.room = name;
  state.entered = false;
  state.blocked = false;
  state.tip = 0;
  state.newBelow = 0;
  resetWindow();
  for (const user of [...state.typing.keys()]) hideTyping(user);
  $("who").replaceChildren();
  $("online-count").textContent = "";
  state.members = [];
  $("members").replaceChildren();
  $("member-count").textContent = "";
  closeRoomForms();
  roomNote("");
  $("room-title").textContent = `# ${name}`;
  if (roomInHash() !== name) history.replaceState(null, "", `#${encodeURIComponent(name)}`);
  setCompose();
  state.outbox.filter((i) => i.state === "sent").forEach(dropItem);  // stored: in the room's history
  renderOutbox();
  updateJump();
  closeDrawers();
  renderRooms();
}

// A room the user cannot open (private and not theirs, or gone): says so, no composing.
function showBlocked(name, text) {
  switchTo(name);
  state.blocked = true;
  const notice = el("li", "blocked", text);
  notice.setAttribute("role", "alert");
  const again = el("button", "small", "Try again");  // e.g. once an owner added the user
  again.type = "button";
  again.addEventListener("click", () => openRoom(name).catch(() => {}));
  notice.append(" ", again);
  $("messages").replaceChildren(notice);
  setCompose();
  updateJump();
}

function cannotOpen(name, err) {
  if (err.code === "no_such_room")
    return `You cannot open #${name}: there is no such room, or it is private and you are not one of its members. An owner of the room can add you.`;
  return `You cannot open #${name}: ${err.message}`;
}

// Opens `name` in place of the open room: joins it first if it is not one of the
// user's (a link to a public room). Returns false if it cannot be opened. A room just
// joined opens at its newest messages, whatever its read marker says.
async function openRoom(name, joined = false) {
  const ticket = ++state.opening;
  if (!state.rooms.has(name)) {
    try {
      joined = (await request("join", { room: name })).joined;
      await refreshRooms(name);
    } catch (err) {
      if (ticket === state.opening && err.code !== "disconnected") showBlocked(name, cannotOpen(name, err));
      return false;
    }
    if (ticket !== state.opening) return false;
  }
  // What is on screen as the user leaves was seen: no waiting for the debounce. Sent
  // once the new room's first page is here: a request alone on the connection is
  // answered at once, one behind another's reply may wait some 40 ms (see FIRST_PAGE).
  const left = state.room;
  const previous = state.rooms.get(left);
  const leaving = previous && left !== name && !state.blocked && connected();
  const seen = leaving ? newestSeen() : 0;
  const after = Math.max(previous?.lastSeq ?? 0, state.tip);
  clearTimeout(state.markTimer);
  switchTo(name);
  await loadOpenRoom(ticket, joined, () => {
    if (!leaving) return;
    sendMarkRead(left, seen);
    // Still followed for its badge, now without presence.
    request("subscribe", { room: left, after, presence: false }).catch(() => {});
  });
  return true;
}

// Shows the open room: the first time, its newest page, or when many are unread the
// page from a little above the read marker; then follows it from the newest seq known.
// After a reconnect only the latter, and the bridge fills the gap.
async function loadOpenRoom(ticket, joined = false, shown = () => {}) {
  const room = state.room;
  if (!state.entered) {
    const r = state.rooms.get(room);
    const marker = r ? Math.max(r.readSeq, r.markSent) : 0;  // with what it is marking now
    const waiting = r && !joined ? Math.max(0, r.lastSeq - marker) : 0;
    state.dividerAfter = waiting ? marker : null;
    const fromMarker = waiting + READ_CONTEXT > FIRST_PAGE;
    const after = Math.max(0, marker - READ_CONTEXT);
    const page = await request("history", fromMarker ? { room, after, limit: FIRST_PAGE } : { room, limit: FIRST_PAGE });
    if (ticket !== state.opening) return shown();
    for (const m of page.messages)
      if (r && m.seq > r.lastSeq) noteMessage({ ...m, room });  // newer than the summary was
    noteTruncation(page);
    showPage(page.messages, fromMarker ? after > 0 && !page.truncated : page.more, fromMarker && page.more);
    if (fromMarker) state.tip = Math.max(state.tip, r.lastSeq);
    const s = $("scroller");
    const divider = $("messages").querySelector(".divider");
    if (divider) s.scrollTop = divider.offsetTop - 4;
    else s.scrollTop = s.scrollHeight;
    state.entered = true;
    updateJump();
  }
  shown();
  if (!state.followed.has(room) && state.followed.size >= MAX_FOLLOWED) {
    // The open room comes first: the room of the oldest activity gives up its place.
    const oldest = state.order.findLast((n) => n !== room && state.followed.has(n));
    state.followed.delete(oldest);
    request("unsubscribe", { room: oldest }).catch(() => {});
  }
  state.followed.add(room);
  await request("subscribe", { room, after: state.tip }).catch((err) => {
    state.followed.delete(room);
    throw err;
  });
  if (ticket !== state.opening) return;
  updateJump();
  loadMore();
  await Promise.all([refreshWho(), refreshMembers().catch(() => {})]);
  scheduleMarkRead();
}

function onFrame(event) {
  const frame = JSON.parse(event.data);
  if (frame.op === "message") {
    if (noteMessage(frame)) notify(frame);
    if (frame.room === state.room && state.entered) {
      onThreadMessage(frame);
      onRoomMessage(frame);
    }
    return;
  }
  if (frame.op === "presence") return frame.room === state.room && onPresence(frame);
  if (frame.op === "read") return onRead(frame);
  if (frame.op === "unsubscribed") return onUnsubscribed(frame);
  const waiter = state.waiting.get(frame.id);
  if (!waiter) return;
  state.waiting.delete(frame.id);
  if (frame.op === "error") waiter.reject(new RequestError(frame.code, frame.message));
  else waiter.resolve(frame);
}

// The room was deleted, or it is private and the user was removed from it.
function onUnsubscribed(frame) {
  state.followed.delete(frame.room);
  state.rooms.delete(frame.room);
  state.order = state.order.filter((n) => n !== frame.room);
  renderRooms();
  if (frame.room === state.room) showBlocked(frame.room, `You cannot open #${frame.room} any more: ${frame.reason}`);
}

// ---- Membership: adding members, leaving ---------------------------------------------------

// The open room's members, with their roles; the user's own role as the node has it now.
async function refreshMembers() {
  const room = state.room;
  const reply = await request("members", { room });
  if (room !== state.room) return;
  state.members = reply.members.map((user, i) => ({ user, role: reply.roles[i] }));
  $("members").replaceChildren(...reply.members.map((user, i) => {
    const li = el("li", "", user);
    li.dataset.user = user;
    li.dataset.role = reply.roles[i];
    if (reply.roles[i] !== "member") li.append(el("span", "role", reply.roles[i]));
    return li;
  }));
  $("member-count").textContent = String(reply.members.length);
  const r = state.rooms.get(room);
  const role = reply.roles[reply.members.indexOf(state.user)];
  if (r && role && r.role !== role) {
    r.role = role;
    setCompose();
  }
}

const isOwner = (room) => state.rooms.get(room)?.role === "owner";

// Leave for a room of the user's that is open; Add member for its owners only.
function setRoomTools() {
  const mine = !state.blocked && state.rooms.has(state.room);
  const owner = mine && isOwner(state.room);
  $("leave").hidden = !mine;
  $("add-open").hidden = !owner;
  if (!mine) $("leave-confirm").hidden = true;
  if (!owner) showAddForm(false);
}

function showAddForm(open) {
  $("add-form").hidden = !open;
  $("add-open").setAttribute("aria-expanded", String(open));
}

function closeRoomForms() {
  showAddForm(false);
  $("leave-confirm").hidden = true;
}

// A line under the room's title: what adding or leaving did, or why it did not.
function roomNote(text, error = false) {
  $("room-note").textContent = text;
  $("room-note").classList.toggle("error", error);
}

$("add-open").addEventListener("click", () => {
  const open = $("add-form").hidden;
  closeRoomForms();
  roomNote("");
  showAddForm(open);
  if (open) $("add-user").focus();
});
$("add-cancel").addEventListener("click", () => showAddForm(false));

// The node takes any user name (it keeps no list of users): the user is told to type it
// exactly, and told whether the name was a member already.
$("add-form").addEventListener("submit", (e) => {
  e.preventDefault();
  const user = $("add-user").value.trim();
  const room = state.room;
  if (!user || !state.ready) return;
  roomNote("");
  request("add_member", { room, user }).then((reply) => {
    if (room !== state.room) return;
    $("add-user").value = "";
    roomNote(reply.added ? `${user} is now a member of #${room}: they can open it.` : `${user} is a member of #${room} already.`);
    refreshMembers().catch(() => {});
  }, (err) => {
    if (room !== state.room) return;
    roomNote(err.code === "forbidden" ? `Only an owner of #${room} can add members.` : `Cannot add ${user}: ${err.message}`, true);
  });
});

$("leave").addEventListener("click", () => {
  const room = state.room;
  closeRoomForms();
  roomNote("");
  const known = state.members.some((m) => m.user === state.user);  // the list is loaded
  const others = state.members.filter((m) => m.user !== state.user);
  const lastOwner = known && others.length > 0 && isOwner(room) && !others.some((m) => m.role === "owner");
  $("leave-question").textContent = lastOwner
    ? `You are the last owner of #${room}: a room keeps an owner while others are in it, so you cannot leave it now.`
    : `Leave #${room}? ${known && !others.length
      ? (state.rooms.get(room)?.private
        ? "You are its only member and it is private: the node will refuse, as nobody could open it again."
        : "You are its only member: the room stays, and anyone may join it.")
      : state.rooms.get(room)?.private
        ? "You will no longer get its messages. It is private: only an owner can add you back."
        : "You will no longer get its messages."}`;
  $("leave-yes").hidden = lastOwner;
  $("leave-no").textContent = lastOwner ? "OK" : "Stay";
  $("leave-confirm").hidden = false;
  $("leave-no").focus();
});
$("leave-no").addEventListener("click", () => { $("leave-confirm").hidden = true; });
$("leave-yes").addEventListener("click", () => {
  const room = state.room;
  $("leave-yes").disabled = true;
  request("leave", { room }).then(() => forgetRoom(room), (err) => {
    if (room !== state.room) return;
    roomNote(err.code === "forbidden"
      ? `You cannot leave #${room}: you are its last owner, and a room keeps an owner while others are in it.`
      : `Cannot leave #${room}: ${err.message}`, true);
  }).finally(() => {
    $("leave-yes").disabled = false;
    $("leave-confirm").hidden = true;
  });
});

// The user is no longer in `room` (left in this tab or another): it goes from the list;
// if it is open, the page opens the user's room of newest activity, or, when none is
// left, goes back to the entry screen.
function forgetRoom(room) {
  state.rooms.delete(room);
  state.order = state.order.filter((n) => n !== room);
  if (state.followed.delete(room)) request("unsubscribe", { room }).catch(() => {});
  renderRooms();
  if (room !== state.room) return;
  const next = state.order.find((n) => state.rooms.has(n));
  if (next) openRoom(next).catch(() => {});
  else showEntry(room);
}

// The entry screen again, after the user left their last room: the connection closes,
// and entering a room starts again (the name kept; a token sign-in needs no name).
function showEntry(room) {
  state.stopped = true;
  state.ready = false;
  state.ws?.close();
  state.room = "";
  state.blocked = false;
  state.rooms.clear();
  state.order = [];
  closeThread();
  resetWindow();
  renderRooms();
  closeDrawers();
  history.replaceState(null, "", location.pathname);
  $("chat").hidden = true;
  $("rooms-toggle").hidden = $("online-toggle").hidden = true;
  updateNotifyButton();
  $("entry-note").textContent = `You left #${room}, your last room. Enter a room to go on.`;
  $("entry-note").hidden = false;
  $("user").value = state.user;
  $("user-label").hidden = !!state.token;
  $("room").value = "";
  $("enter").hidden = false;
  setStatus("not connected");
  $("room").focus();
}

// Names for the room form: the rooms the user may join (public ones: a private room
// is not listed to those who are not in it), asked each time the field is entered.
$("new-room").addEventListener("focus", () => {
  if (!state.ready) return;
  request("rooms").then((reply) => {
    $("room-names").replaceChildren(...reply.rooms.filter((n) => !state.rooms.has(n)).map((n) => {
      const option = el("option");
      option.value = n;
      return option;
    }));
  }).catch(() => {});
});

// ---- Signing in -----------------------------------------------------------------------------

// A token in the address (#token=T, or #token=T&room=R) signs in with it: it is kept
// for this tab only (sessionStorage, so a reload works) and taken out of the address.
function takeToken() {
  const m = location.hash.match(/^#token=([^&]*)(?:&room=(.*))?$/);
  let token = "";
  if (m) history.replaceState(null, "", `${location.pathname}${location.search}${m[2] ? `#${m[2]}` : ""}`);
  try {
    if (m) {
      token = decodeURIComponent(m[1]);
      sessionStorage.setItem(TOKEN_KEY, token);
    } else {
      token = sessionStorage.getItem(TOKEN_KEY) ?? "";
    }
  } catch {
    // No storage (a sandboxed page): the token lasts as long as the page. (Or a
    // malformed link: then no token, and the page asks for a name.)
  }
  return token;
}

// The bridge refused the sign-in: says why, and stops trying.
function refuseSignIn(err) {
  state.stopped = true;
  state.ws.close();
  try {
    sessionStorage.removeItem(TOKEN_KEY);
  } catch {
    // nothing kept
  }
  let text;
  if (state.token) {
    const expired = err.message.match(/expired at (\d+)/);
    if (expired) text = `Your sign-in link has expired (it was good until ${fullFormat.format(Number(expired[1]) * 1000)}). Ask for a new one.`;
    else if (err.code === "unauthenticated") text = `Your sign-in link was refused: ${err.message}. Ask for a new one.`;
    else text = `This node does not take sign-in links (${err.message}): enter a name instead.`;
  } else if (err.code === "unauthenticated") {
    text = "This node signs users in with a link that carries a token (…/#token=…): ask for one.";
  } else {
    text = `Cannot sign in: ${err.message}`;
  }
  $("login-error").textContent = text;
  $("login-error").hidden = false;
  $("chat").hidden = true;
  $("rooms-toggle").hidden = $("online-toggle").hidden = true;
  updateNotifyButton();
  // A name is asked for only where names are taken.
  $("enter").hidden = !(state.token ? err.code === "bad_field" : err.code !== "unauthenticated");
  state.token = "";
  setStatus("not signed in");
}

async function enter() {
  try {
    const auth = await request("auth", state.token ? { token: state.token } : { user: state.user });
    state.user = auth.user;
  } catch (err) {
    if (err.code !== "disconnected") refuseSignIn(err);
    throw err;
  }
  if (state.myStatus.status !== "online" || state.myStatus.text)
    await request("set_status", state.myStatus).catch(() => {});
  let joined = false;  // just now: the entry room opens at its newest messages
  try {
    await request("create_room", { room: state.entryRoom });
    joined = (await request("join", { room: state.entryRoom })).joined;
  } catch (err) {
    if (err.code === "disconnected") throw err;  // else another room is opened
  }
  // The room open before a reconnect; else the one the address names; else the entry room.
  const target = state.room || roomInHash() || state.entryRoom;
  await refreshRooms(target);
  state.ready = true;
  flushOutbox();
  if (target === state.room && state.rooms.has(target) && !state.blocked) return loadOpenRoom(state.opening);
  await openRoom(target, joined && target === state.entryRoom);
}

// The bridges `spec` lists (`?bridges=`: comma-separated `host:port` entries, which
// take the page's scheme, or `ws://` / `wss://` URLs; a URL without a path gets /ws),
// duplicates and malformed entries left out; none given (or none usable): the page's
// own origin's. The page starts at its own origin's when it is listed, else at the first.
function parseBridges(spec) {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  const own = `${scheme}//${location.host}/ws`;
  const list = [];
  for (const entry of (spec ?? "").split(",").map((e) => e.trim()).filter(Boolean)) {
    let url = null;
    try {
      url = new URL(/^[a-z][a-z0-9+.-]*:\/\//i.test(entry) ? entry : `${scheme}//${entry}`);
    } catch {
      // not a URL, nor host:port
    }
    if (!url || (url.protocol !== "ws:" && url.protocol !== "wss:") || !url.host) {
      console.warn(`bridges: "${entry}" is not host:port nor a ws:// or wss:// URL; left out`);
      continue;
    }
    if (url.pathname === "/") url.pathname = "/ws";
    if (!list.includes(url.href)) list.push(url.href);
  }
  if (!list.length) return { list: [own], start: 0 };
  return { list, start: Math.max(0, list.findIndex((u) => new URL(u).host === location.host && u.startsWith(scheme))) };
}

// Where the status line says the page is: only when it has several bridges to go to.
function bridgeName(index = state.bridge) {
  return state.bridges.length > 1 ? new URL(state.bridges[index]).host : "";
}

function connect() {
  const name = bridgeName();
  state.ready = false;
  state.followed = new Set();
  setStatus(name ? `connecting to ${name}…` : "connecting…");
  let ws = null;
  try {
    ws = new WebSocket(state.bridges[state.bridge]);
  } catch (err) {  // a URL the browser will not open: the next one
    console.warn(`bridges: cannot open ${state.bridges[state.bridge]}: ${err.message}`);
  }
  state.ws = ws;
  if (!ws) return reconnect("cannot open");
  let gone = false, alive = 0;
  // The connection is over (closed, or given up): its requests fail, and unless the
  // page stopped, it reconnects. Once per connection, whichever way it ended.
  const lost = (why) => {
    if (gone) return;
    gone = true;
    clearTimeout(opening);
    clearInterval(alive);
    ws.onopen = ws.onmessage = ws.onclose = null;
    ws.close();
    if (ws !== state.ws) return;  // a newer connection is the page's now
    state.ready = false;
    for (const w of state.waiting.values()) w.reject(new RequestError("disconnected", "disconnected"));
    state.waiting.clear();
    if (!state.stopped) reconnect(why);
  };
  state.drop = lost;
  // A bridge that does not answer (its machine gone, or one the browser will not open,
  // which may not even fire `close`) is given up after a while, open or not.
  const opening = setTimeout(() => lost("no answer"), CONNECT_TIMEOUT_MS);
  ws.onmessage = onFrame;
  ws.onopen = () => {
    clearTimeout(opening);
    // With other bridges to go to, a node that stops answering is left for one of them
    // (a lone bridge is waited for, as before: a page has nowhere else to go).
    if (state.bridges.length > 1) alive = setInterval(() => {
      let timer = 0;
      const late = new Promise((_, reject) => {
        timer = setTimeout(() => reject(new RequestError("no_answer", "no answer")), PING_TIMEOUT_MS);
      });
      Promise.race([request("ping"), late]).catch((err) => { if (err.code === "no_answer") lost("no answer"); })
        .finally(() => clearTimeout(timer));
    }, PING_EVERY_MS);
    enter().then(() => {
      state.retryMs = 250;
      state.connections++;
      setStatus(name ? `connected as ${state.user} via ${name}` : `connected as ${state.user}`, true);
      if (state.thread.failed) loadThread(state.thread, state.thread.failed === "older");
    }).catch((err) => {
      if (state.stopped || ws !== state.ws || err.code === "disconnected") return;  // lost() says it
      // A node that cannot serve now (a failover under way, no answer in time): like a
      // lost connection, another try, on the next bridge when there are several.
      if (err.code === "unavailable") return lost("unavailable");
      setStatus(`error: ${err.message}`);
    });
  };
  ws.onclose = (e) => lost(e.code);
}

// The connection closed, or could not be made: the next bridge (round robin), after the
// backoff.
function reconnect(code) {
  for (const user of [...state.typing.keys()]) hideTyping(user);
  setWhoStale(true);
  const from = bridgeName();
  state.bridge = (state.bridge + 1) % state.bridges.length;
  setStatus(from ? `disconnected from ${from} (${code}): reconnecting to ${bridgeName()}…`
    : `disconnected (${code}): reconnecting…`);
  for (const item of state.outbox) updateItem(item);
  setTimeout(connect, state.retryMs);
  state.retryMs = Math.min(state.retryMs * 2, RETRY_MAX_MS);
}

function showChat() {
  $("enter").hidden = true;
  $("login-error").hidden = true;
  $("chat").hidden = false;
  $("rooms-toggle").hidden = $("online-toggle").hidden = false;
  updateNotifyButton();
}

// ---- Controls -----------------------------------------------------------------------------

const DRAWERS = [["rooms-nav", "rooms-toggle"], ["online", "online-toggle"]];

function closeDrawers() {
  for (const [drawer, toggle] of DRAWERS) {
    $(drawer).classList.remove("open");
    $(toggle).setAttribute("aria-expanded", "false");
  }
}

for (const [drawer, toggle] of DRAWERS) {
  $(toggle).addEventListener("click", () => {
    const open = !$(drawer).classList.contains("open");
    closeDrawers();
    $(drawer).classList.toggle("open", open);
    $(toggle).setAttribute("aria-expanded", String(open));
  });
}
$("rooms-close").addEventListener("click", closeDrawers);
$("online-close").addEventListener("click", closeDrawers);
document.addEventListener("keydown", (e) => {
  if (e.key !== "Escape") return;
  closeDrawers();
  closeRoomForms();  // Add member, and the leave question
  if ($("thread").contains(document.activeElement)) {  // Escape in the thread closes it
    closeThread();
    $("text").focus();
  }
});
document.addEventListener("click", (e) => {  // a click beside a drawer folds it
  if (!e.target.closest(".drawer, .toggle")) closeDrawers();
});
$("rooms").addEventListener("click", (e) => { if (e.target.closest("a")) closeDrawers(); });

$("notify").addEventListener("click", () => {
  Notification.requestPermission().then(updateNotifyButton, updateNotifyButton);
});

window.addEventListener("hashchange", () => {
  if (location.hash.startsWith("#token=")) {  // a new sign-in link: start again with it
    takeToken();
    location.reload();
    return;
  }
  const name = roomInHash();
  if (!name || name === state.room || !state.ready) return;
  $("room-error").textContent = "";
  openRoom(name).catch(() => {});
});

$("room-form").addEventListener("submit", (e) => {
  e.preventDefault();
  const name = $("new-room").value.trim();
  const create = e.submitter?.value === "create";
  const hidden = create && $("new-private").checked;
  if (!name || !state.ready) return;
  $("room-error").textContent = "";
  (async () => {
    if (create && !(await request("create_room", { room: name, private: hidden })).created)
      throw new Error(`#${name} exists already: join it`);
    const { joined } = await request("join", { room: name });
    await refreshRooms(name);
    $("new-room").value = "";
    $("new-private").checked = false;
    if (name !== state.room) await openRoom(name, joined);
  })().catch((err) => {
    $("room-error").textContent = err.code === "no_such_room"
      ? `You cannot join #${name}: there is no such room, or it is private (an owner of the room can add you).`
      : err.message;
  });
});

$("status-form").addEventListener("submit", (e) => {
  e.preventDefault();
  const wanted = { status: $("my-status").value, text: $("my-status-text").value.trim() };
  request("set_status", wanted).then(() => {
    state.myStatus = wanted;
    closeDrawers();
  }, (err) => setStatus(`status not set: ${err.message}`));
});

$("scroller").addEventListener("scroll", () => {
  scheduleMarkRead();
  updateJump();
  loadMore();
}, { passive: true });
$("jump").addEventListener("click", () => jumpToLatest().catch(() => {}));
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
  const search = new URLSearchParams({ user: state.user, room: state.entryRoom });
  if (params.has("bridges")) search.set("bridges", params.get("bridges"));  // kept for a reload
  history.replaceState(null, "", `?${search}${location.hash}`);
  state.stopped = false;
  $("entry-note").hidden = true;
  showChat();
  connect();
});

$("compose").addEventListener("submit", (e) => {
  e.preventDefault();
  const body = $("text").value;
  if (!body || state.blocked || !state.room) return;
  $("text").value = "";
  submitMessage(body);
});

$("thread-compose").addEventListener("submit", (e) => {
  e.preventDefault();
  const body = $("thread-text").value;
  if (!body || $("thread-text").disabled || !state.thread.root) return;
  $("thread-text").value = "";
  submitMessage(body, state.thread.root);
});
$("thread-close").addEventListener("click", () => {
  closeThread();
  $("text").focus();
});
$("thread-older").addEventListener("click", () => { if (state.thread.root) loadThread(state.thread, true); });

function sendTyping() {
  const now = Date.now();
  if (now - state.lastTyping < TYPING_EVERY_MS || !state.ready) return;
  state.lastTyping = now;
  request("typing", { room: state.room }).catch(() => {});
}
$("text").addEventListener("input", sendTyping);
$("thread-text").addEventListener("input", sendTyping);

// #token=… signs in with a token (a node run with --token-key); else ?user=ann&room=general
// enters at once (and survives a reload); #room opens that room.
const params = new URLSearchParams(location.search);
({ list: state.bridges, start: state.bridge } = parseBridges(params.get("bridges")));
state.token = takeToken();
if (state.token) {
  state.entryRoom = params.get("room") || "general";
  showChat();
  connect();
} else if (params.get("user") && params.get("room")) {
  $("user").value = params.get("user");
  $("room").value = params.get("room");
  $("enter").requestSubmit();
}
