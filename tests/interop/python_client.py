#!/usr/bin/python3
"""Interoperability test: a Switchboard client written from docs/PROTOCOL.md alone.

Usage: python_client.py PATH_TO_SWITCHBOARD_BINARY

Starts a node on a temporary data directory, talks to it over ZeroMQ + msgpack
exactly as the protocol document describes, checks everything a client relies on,
stops the node with SIGTERM and prints "N passed, M failed".

Only the standard library, python3-zmq and python3-msgpack are used.
"""

import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import uuid

import msgpack
import zmq

PROTOCOL_VERSION = 1
READY_TIMEOUT = 30.0      # seconds to wait for the node's "ready" line
REQUEST_TIMEOUT = 5.0     # seconds to wait for one reply
QUIET_PERIOD = 0.25       # seconds of silence on SUB before the last_seq check (section 5)
FOLLOW_TIMEOUT = 10.0     # seconds a follower may take to catch up
EXIT_TIMEOUT = 15.0       # seconds the node may take to exit after SIGTERM
N = 20                    # messages published to the main room

ROOM = "py-room"
ROOM2 = "py-room-2"       # has ROOM as a prefix: must not leak into ROOM's subscription
EMPTY_ROOM = "py-empty"

READY_RE = re.compile(
    r"^switchboard ready node=(?P<node>\S+) client=(?P<client>\S+) pub=(?P<pub>\S+) "
    r"data=(?P<data>.+?) durability=(?P<durability>\S+)(?: \S+=\S+)*$")


# CURVE keys (docs/SECURITY.md), set once the node is up: its public key, and the
# local client's keypair the node made in DATA/keys and admits.
CURVE = {}


def load_curve_keys(keys_dir):
    def line(name):
        with open(os.path.join(keys_dir, name)) as f:
            return f.readline().strip().encode()
    CURVE.update(server=line("node.key.pub"), public=line("client.key.pub"), secret=line("client.key"))


def secure(socket):
    """Makes `socket` a CURVE client of the node (before it connects)."""
    socket.curve_serverkey = CURVE["server"]
    socket.curve_publickey = CURVE["public"]
    socket.curve_secretkey = CURVE["secret"]


# --------------------------------------------------------------------------- checks

class Checks:
    """Counts passed and failed checks; failures are printed as they happen."""

    def __init__(self):
        self.passed = 0
        self.failed = 0
        self.failures = []

    def check(self, condition, what, detail=None):
        """Record one check. Returns the condition so callers can branch on it."""
        if condition:
            self.passed += 1
        else:
            self.failed += 1
            text = what if detail is None else f"{what}: {detail}"
            self.failures.append(text)
            print(f"FAIL: {text}", flush=True)
        return bool(condition)

    def equal(self, actual, expected, what):
        return self.check(actual == expected, what, f"expected {expected!r}, got {actual!r}")

    def error(self, text):
        """Record an unexpected exception or setup failure as one failed check."""
        self.check(False, text)


# --------------------------------------------------------------------------- client

class RequestTimeout(Exception):
    """No reply arrived within the per-request timeout."""


class ProtocolError(Exception):
    """The node answered with an error reply (section 3)."""

    def __init__(self, reply):
        self.reply = reply
        self.code = reply.get("code")
        super().__init__(f"{reply.get('op')} {self.code}: {reply.get('message')}")


class Client:
    """A Switchboard client: one DEALER socket on the client endpoint (section 1).

    Requests are single-frame msgpack maps carrying v, op and a counter id; replies
    are matched by id (they may arrive out of order, section 2.1). Replies that
    arrive while waiting for another id are kept until asked for.
    """

    def __init__(self, ctx, endpoint, timeout=REQUEST_TIMEOUT):
        self.endpoint = endpoint
        self.timeout = timeout
        self.socket = ctx.socket(zmq.DEALER)
        self.socket.setsockopt(zmq.LINGER, 0)
        secure(self.socket)
        self.socket.connect(endpoint)
        self.next_id = 1          # id 0 is what the node uses when it cannot read an id
        self.pending = {}         # id -> list of replies received but not yet claimed

    def close(self):
        self.socket.close(0)

    # -- low level

    def new_id(self):
        request_id = self.next_id
        self.next_id += 1
        return request_id

    def send(self, op, request_id=None, version=PROTOCOL_VERSION, **fields):
        """Send one request without waiting; returns its id."""
        if request_id is None:
            request_id = self.new_id()
        request = {"v": version, "op": op, "id": request_id}
        request.update(fields)
        self.socket.send(msgpack.packb(request, use_bin_type=True))
        return request_id

    def send_frames(self, frames):
        """Send arbitrary raw frames (for malformed-request tests)."""
        self.socket.send_multipart(frames)

    def receive(self, request_id, timeout=None, or_id=None):
        """Wait for the reply with this id, polling (never sleeping) up to the timeout.

        With `or_id`, a reply carrying that id instead is accepted too (used for
        error replies that may carry id 0, section 3)."""
        timeout = self.timeout if timeout is None else timeout
        for wanted in (request_id, or_id):
            if wanted is not None and self.pending.get(wanted):
                return self.pending[wanted].pop(0)
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not self.socket.poll(int(remaining * 1000) + 1, zmq.POLLIN):
                raise RequestTimeout(
                    f"no reply to request id {request_id} from {self.endpoint} "
                    f"within {timeout:.1f} s")
            frames = self.socket.recv_multipart()
            if len(frames) != 1:
                raise AssertionError(f"reply of {len(frames)} frames, expected 1: {frames!r}")
            reply = msgpack.unpackb(frames[0], raw=False)
            if not isinstance(reply, dict):
                raise AssertionError(f"reply is not a map: {reply!r}")
            if reply.get("id") == request_id or (or_id is not None and reply.get("id") == or_id):
                return reply
            self.pending.setdefault(reply.get("id"), []).append(reply)

    def call(self, op, **fields):
        """Send a request and return its reply map, error replies included."""
        return self.receive(self.send(op, **fields))

    def request(self, op, **fields):
        """Send a request and return its successful reply; raise ProtocolError on error."""
        reply = self.call(op, **fields)
        if reply.get("op") == "error":
            raise ProtocolError(reply)
        if reply.get("op") != op or reply.get("v") != PROTOCOL_VERSION:
            raise AssertionError(f"reply to {op} has wrong op/v: {reply!r}")
        return reply

    # -- operations (section 4)

    def hello(self):
        return self.request("hello")

    def ping(self):
        return self.request("ping")

    def create_room(self, room, user):
        return self.request("create_room", room=room, user=user)["created"]

    def join(self, room, user):
        return self.request("join", room=room, user=user)["joined"]

    def leave(self, room, user):
        return self.request("leave", room=room, user=user)["left"]

    def rooms(self, user=None):
        fields = {} if user is None else {"user": user}
        return self.request("rooms", **fields)["rooms"]

    def members(self, room):
        return self.request("members", room=room)["members"]

    def publish(self, room, user, body, cmid=None):
        """Publish a message; returns the reply (room, seq, ts, duplicate)."""
        if cmid is None:
            cmid = new_cmid()
        return self.request("publish", room=room, user=user, cmid=cmid, body=body)

    def change(self, room, user, kind, target, cmid=None, **fields):
        """An edit (body=...), delete or react (key=..., on=...) of message `target`
        (section 4.7.2): a publish with `kind`; returns the reply (room, seq, ts, duplicate)."""
        return self.request("publish", room=room, user=user, cmid=cmid or new_cmid(), kind=kind,
                            target=target, **fields)

    def history_reply(self, room, limit=None, before=None, after=None):
        """The whole history reply: messages, more, and truncated/first_seq when the
        page asked below the room's first seq (section 4.8)."""
        fields = {"room": room}
        for key, value in (("limit", limit), ("before", before), ("after", after)):
            if value is not None:
                fields[key] = value
        return self.request("history", **fields)

    def history(self, room, limit=None, before=None, after=None):
        """Returns (messages, more)."""
        reply = self.history_reply(room, limit, before, after)
        return reply["messages"], reply["more"]

    def last_seq(self, room):
        return self.request("last_seq", room=room)["seq"]


def new_cmid():
    """A random 128-bit hex client message id (section 4.7)."""
    return uuid.uuid4().hex


def pick_pub_endpoint(client_endpoint, pub_endpoints):
    """Choose the pub endpoint with the client endpoint's transport (section 4.1)."""
    transport, _, address = client_endpoint.partition("://")
    for endpoint in pub_endpoints:
        pub_transport, _, pub_address = endpoint.partition("://")
        if pub_transport != transport:
            continue
        if transport == "tcp":
            host, _, port = pub_address.rpartition(":")
            if host in ("0.0.0.0", "*"):
                connected_host = address.rpartition(":")[0]
                return f"tcp://{connected_host}:{port}"
        return endpoint
    raise AssertionError(f"no {transport} endpoint among pub endpoints {pub_endpoints!r}")


class Follower:
    """Follows one room from a SUB socket without losing anything (section 5).

    To exercise the repair paths deliberately, `drop_nth` lists positions (0-based,
    in order of arrival) of SUB messages to discard as if PUB/SUB had lost them,
    `drop` lists seqs to discard, and `redeliver_nth` lists positions of messages
    to process twice.
    """

    def __init__(self, ctx, pub_endpoint, client, room, start=1,
                 drop=(), drop_nth=(), redeliver_nth=()):
        self.client = client
        self.room = room
        self.topic = room.encode("utf-8") + b"\x00"
        self.next = start
        self.delivered = []           # message maps, in delivery order
        self.foreign = []             # topics of messages not for this room
        self.received = 0             # messages taken from SUB (before simulated loss)
        self.duplicates_dropped = 0
        self.gaps_repaired = 0
        self.idle_repairs = 0
        self.truncated = []           # (seq wanted, the room's first seq) where history said so
        self.drop = set(drop)
        self.drop_nth = set(drop_nth)
        self.redeliver_nth = set(redeliver_nth)
        self.socket = ctx.socket(zmq.SUB)
        self.socket.setsockopt(zmq.LINGER, 0)
        secure(self.socket)
        self.socket.connect(pub_endpoint)
        self.socket.setsockopt(zmq.SUBSCRIBE, self.topic)   # step 1: subscribe first

    def close(self):
        self.socket.close(0)

    def _deliver(self, message):
        self.delivered.append(message)
        self.next = message["seq"] + 1

    def _fetch_until(self, last):
        """Fetch history after next-1 up to seq `last` and deliver it in order."""
        while self.next <= last:
            reply = self.client.history_reply(
                self.room, after=self.next - 1, limit=last - self.next + 1)
            messages = reply["messages"]
            if reply.get("truncated"):
                # The room no longer holds what was wanted (section 4.8): say so, and go
                # on from where it starts; never a silent gap.
                first = reply["first_seq"]
                if first <= self.next:
                    raise AssertionError(f"truncated with first_seq {first}, but seq {self.next} was asked")
                self.truncated.append((self.next, first))
                self.next = first
                continue
            if not messages:
                raise AssertionError(
                    f"history after {self.next - 1} of {self.room} returned nothing, "
                    f"expected up to seq {last}")
            for message in messages:
                if message["seq"] > last:
                    break
                if message["seq"] != self.next:
                    raise AssertionError(
                        f"history returned seq {message['seq']}, expected {self.next}")
                self._deliver(message)

    def handle(self, message):
        """Step 3: drop, deliver, or repair a gap and then deliver."""
        seq = message["seq"]
        if seq < self.next:
            self.duplicates_dropped += 1
        elif seq == self.next:
            self._deliver(message)
        else:
            self.gaps_repaired += 1
            self._fetch_until(seq - 1)
            self._deliver(message)

    def idle_check(self):
        """Step 4: after a quiet period, ask last_seq and fetch any missed tail.

        Returns the room's last seq."""
        last = self.client.last_seq(self.room)
        if last >= self.next:
            self.idle_repairs += 1
            self._fetch_until(last)
        return last

    def receive_one(self, timeout):
        """Take one message from SUB (or None after `timeout` seconds of quiet)."""
        if not self.socket.poll(int(timeout * 1000), zmq.POLLIN):
            return None
        frames = self.socket.recv_multipart()
        if len(frames) != 2 or frames[0] != self.topic:
            self.foreign.append(frames[0])      # the topic is enough to report
            return {}
        payload = msgpack.unpackb(frames[1], raw=False)
        if payload.get("room") != self.room or payload.get("op") != "message":
            self.foreign.append(frames[0])      # the topic is enough to report
            return {}
        return payload

    def follow_until_caught_up(self, timeout=FOLLOW_TIMEOUT):
        """Process SUB messages until a quiet period's last_seq shows nothing is missing."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            message = self.receive_one(QUIET_PERIOD)
            if message is None:
                if self.idle_check() < self.next:
                    return
                continue
            if not message:
                continue          # foreign message, recorded
            position = self.received
            self.received += 1
            if message["seq"] in self.drop or position in self.drop_nth:
                continue                          # simulated loss
            self.handle(message)
            if position in self.redeliver_nth:
                self.handle(message)              # simulated duplicate delivery
        raise RequestTimeout(f"follower of {self.room} did not catch up in {timeout} s")

    def drain(self, timeout):
        """Keep processing whatever still arrives during `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            message = self.receive_one(remaining)
            if message:
                self.received += 1
                self.handle(message)


# --------------------------------------------------------------------------- node

class Node:
    """The switchboard process under test, on a temporary data directory."""

    def __init__(self, binary):
        self.binary = binary
        self.data_dir = tempfile.mkdtemp(prefix="switchboard-py-")
        self.process = None
        self.lines = queue.Queue()
        self.client_endpoint = None
        self.ready_line = None

    def start(self):
        """Start the node and wait (bounded) for its ready line on stdout."""
        command = [self.binary, "run", "--data", self.data_dir,
                   "--listen", "tcp://127.0.0.1:*", "--durability", "nosync"]
        deadline = time.monotonic() + READY_TIMEOUT
        # The binary may be rebuilt at any moment: retry while it is missing or busy.
        while True:
            try:
                self.process = subprocess.Popen(
                    command, stdout=subprocess.PIPE, stdin=subprocess.DEVNULL,
                    text=True, bufsize=1)
                break
            except OSError as e:
                if time.monotonic() >= deadline:
                    raise AssertionError(f"cannot start {self.binary}: {e}")
                time.sleep(0.5)   # retry back-off while the binary is being rebuilt
        threading.Thread(target=self._read_stdout, daemon=True).start()
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"node printed no ready line within {READY_TIMEOUT} s")
            try:
                line = self.lines.get(timeout=remaining)
            except queue.Empty:
                continue
            if line is None:
                raise AssertionError(
                    f"node exited before it was ready (status {self.process.wait()})")
            match = READY_RE.match(line.rstrip("\n"))
            if match:
                self.ready_line = line.rstrip("\n")
                self.client_endpoint = match.group("client")
                return match

    def _read_stdout(self):
        for line in self.process.stdout:
            self.lines.put(line)
        self.lines.put(None)

    def stop(self):
        """SIGTERM, wait; returns the exit status (None if it had to be killed)."""
        if self.process is None or self.process.poll() is not None:
            return None if self.process is None else self.process.returncode
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=EXIT_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            return None

    def cleanup(self):
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        shutil.rmtree(self.data_dir, ignore_errors=True)


# --------------------------------------------------------------------------- scenarios

def scenario_hello(checks, client, state):
    """hello: protocol 1, node name, max_body, and a pub endpoint usable from here."""
    reply = client.hello()
    checks.equal(reply.get("v"), 1, "hello reply v")
    checks.equal(reply.get("protocol"), 1, "hello protocol")
    checks.check(isinstance(reply.get("node"), str) and reply["node"], "hello node is a name",
                 repr(reply.get("node")))
    checks.check(isinstance(reply.get("max_body"), int) and reply["max_body"] > 0,
                 "hello max_body is a positive integer", repr(reply.get("max_body")))
    pubs = reply.get("pub")
    checks.check(isinstance(pubs, list) and pubs and all(isinstance(p, str) for p in pubs),
                 "hello pub is a non-empty array of strings", repr(pubs))
    state["pub"] = pick_pub_endpoint(client.endpoint, pubs)
    state["max_body"] = reply["max_body"]
    checks.check(isinstance(reply.get("max_batch"), int) and reply["max_batch"] >= 1,
                 "hello max_batch says how many items a publish_batch may carry", repr(reply.get("max_batch")))
    state["max_batch"] = reply.get("max_batch", 0)
    checks.check(state["pub"].startswith("tcp://"), "pub endpoint uses tcp", state["pub"])
    checks.equal(client.ping(), {"v": 1, "op": "ping", "id": client.next_id - 1},
                 "ping reply is exactly v/op/id")


def scenario_rooms_and_members(checks, client, state):
    """create_room, join, leave, members and rooms (all and per user)."""
    checks.equal(client.create_room(ROOM, "ann"), True, "create_room new room")
    checks.equal(client.create_room(ROOM, "bob"), False, "create_room again: created false")
    checks.equal(client.members(ROOM), ["ann"], "creator is the only member")
    checks.equal(client.create_room(ROOM2, "ann"), True, "create_room prefixed room")
    checks.equal(client.create_room(EMPTY_ROOM, "dan"), True, "create_room empty room")
    checks.equal(client.join(ROOM, "bob"), True, "join")
    checks.equal(client.join(ROOM, "bob"), False, "join again: joined false")
    checks.equal(client.join(ROOM, "carol"), True, "join carol")
    checks.equal(client.members(ROOM), ["ann", "bob", "carol"], "members sorted")
    checks.equal(client.leave(ROOM, "carol"), True, "leave")
    checks.equal(client.leave(ROOM, "carol"), False, "leave again: left false")
    checks.equal(client.members(ROOM), ["ann", "bob"], "members after leave")
    checks.equal(client.rooms(), sorted([ROOM, ROOM2, EMPTY_ROOM]), "rooms: all, sorted")
    checks.equal(client.rooms(user="ann"), sorted([ROOM, ROOM2]), "rooms of ann")
    checks.equal(client.rooms(user="bob"), [ROOM], "rooms of bob")
    checks.equal(client.rooms(user="nobody"), [], "rooms of a user in none")
    for op, fields in (("join", {"room": "py-missing", "user": "bob"}),
                       ("members", {"room": "py-missing"})):
        reply = client.call(op, **fields)
        checks.equal(reply.get("code"), "no_such_room", f"{op} on a missing room")


def scenario_bans(checks, client, state):
    """ban and unban (section 4.11): a ban ends the membership and refuses every join and
    add_member until an owner unbans; unban lifts the ban and readmits nobody."""
    room = "py-bans"
    owner = {"as": "ann"}
    checks.equal(client.create_room(room, "ann"), True, "create_room for bans")
    checks.equal(client.join(room, "eve"), True, "eve joins")
    checks.equal(client.call("ban", room=room, user="eve", **owner).get("banned"), True, "ban: banned true")
    checks.equal(client.members(room), ["ann"], "a ban ends the membership")
    checks.equal(client.call("ban", room=room, user="eve", **owner).get("banned"), False,
                 "ban again: banned false")
    checks.equal(client.call("join", room=room, user="eve").get("code"), "forbidden",
                 "a banned user's join is forbidden")
    checks.equal(client.call("add_member", room=room, user="eve", **owner).get("code"), "forbidden",
                 "a banned user cannot be added")
    checks.equal(client.call("publish", room=room, user="eve", body="x", cmid=new_cmid()).get("code"),
                 "not_member", "a banned user cannot publish")
    checks.equal(client.call("ban", room=room, user="ann", **owner).get("code"), "forbidden",
                 "an owner may not ban themselves")
    checks.equal(client.call("ban", room=room, user="ann", **{"as": "eve"}).get("code"), "forbidden",
                 "a non-member may not ban")
    checks.equal(client.call("ban", room="py-missing", user="eve").get("code"), "no_such_room",
                 "ban in a missing room")
    checks.equal(client.call("unban", room=room, user="eve", **owner).get("unbanned"), True, "unban: unbanned true")
    checks.equal(client.call("unban", room=room, user="eve", **owner).get("unbanned"), False,
                 "unban again: unbanned false")
    checks.equal(client.members(room), ["ann"], "unban readmits nobody")
    checks.equal(client.join(room, "eve"), True, "after unban, a join is a join")


def scenario_message_life(checks, client, state):
    """edit, delete and react (section 4.7.2) on the wire: entries with seqs of their own,
    history showing each message as it is now, each rule's refusal by its code."""
    room = "py-life"
    checks.equal(client.create_room(room, "ann"), True, "create_room for message life")
    checks.equal(client.join(room, "bob"), True, "bob joins")
    first = client.publish(room, "ann", "helo")["seq"]
    second = client.publish(room, "bob", "bob's")["seq"]
    checks.equal(client.change(room, "ann", "edit", first, body="hello")["seq"], 3, "an edit takes the next seq")
    checks.equal(client.change(room, "bob", "react", first, key="\U0001F44D")["seq"], 4, "a reaction too")
    checks.equal(client.change(room, "bob", "delete", second)["seq"], 5, "a delete too")
    retry = client.change(room, "bob", "react", first, cmid="py-r1", key="ok")
    again = client.change(room, "bob", "react", first, cmid="py-r1", key="ok")
    checks.equal((again["seq"], again["duplicate"]), (retry["seq"], True), "a retry of a reaction is a duplicate")
    messages = client.request("history", room=room, **{"as": "bob"})["messages"]
    checks.equal([m["seq"] for m in messages], [1, 2, 3, 4, 5, 6], "every entry in history")
    checks.equal((messages[0]["body"], messages[0]["reactions"], sorted(messages[0]["mine"])),
                 ("hello", {"ok": 1, "\U0001F44D": 1}, sorted(["ok", "\U0001F44D"])),
                 "the message as it is now, with the reader's own reactions")
    checks.equal("edited_ts" in messages[0], True, "an edited message says when")
    checks.equal((messages[1]["body"], messages[1].get("deleted")), ("", True), "a deleted message: a tombstone")
    checks.equal((messages[2]["kind"], messages[2]["target"], messages[2]["body"]), ("edit", 1, "hello"),
                 "the edit entry itself")
    checks.equal((messages[3]["kind"], messages[3]["key"], messages[3]["on"]), ("react", "\U0001F44D", True),
                 "the reaction entry itself")
    refusals = [
        ({"user": "bob", "kind": "edit", "target": first, "body": "x"}, "forbidden", "editing another's message"),
        ({"user": "bob", "kind": "delete", "target": second}, "message_deleted", "deleting twice"),
        ({"user": "ann", "kind": "edit", "target": 99, "body": "x"}, "no_such_message", "an unknown target"),
        ({"user": "ann", "kind": "edit", "target": 4, "body": "x"}, "no_such_message", "a reaction as a target"),
        ({"user": "bob", "kind": "react", "target": first, "key": "ok"}, "no_change", "reacting twice"),
        ({"user": "bob", "kind": "react", "target": first, "key": ""}, "bad_field", "an empty key"),
        ({"user": "bob", "kind": "react", "target": first, "key": "k" * 33}, "bad_field", "a key over 32 bytes"),
        ({"user": "bob", "kind": "shout", "target": first}, "bad_field", "an unknown kind"),
        ({"user": "bob", "kind": "delete", "target": first, "body": "x"}, "bad_field", "a delete with a body"),
        ({"user": "bob", "target": first, "body": "x"}, "bad_field", "a target without a kind"),
    ]
    for fields, code, what in refusals:
        checks.equal(client.call("publish", room=room, cmid=new_cmid(), **fields).get("code"), code, what)
    checks.equal(client.last_seq(room), 6, "no refusal stored anything")


def scenario_threads(checks, client, state):
    """reply_to and thread (section 4.7.3) on the wire: the root's summary in history, one
    thread's pages, each bad reference by its code."""
    room = "py-threads"
    checks.equal(client.create_room(room, "ann"), True, "create_room for threads")
    checks.equal(client.join(room, "bob"), True, "bob joins")
    root = client.publish(room, "ann", "lunch?")["seq"]
    first = client.request("publish", room=room, user="bob", cmid=new_cmid(), body="yes", thread=root)["seq"]
    second = client.request("publish", room=room, user="ann", cmid=new_cmid(), body="noon", thread=root,
                            reply_to=first)["seq"]
    aside = client.request("publish", room=room, user="bob", cmid=new_cmid(), body="aside", reply_to=root)["seq"]
    messages = client.history(room)[0]
    checks.equal((messages[0]["replies"], messages[0]["last_reply"], messages[0]["repliers"]),
                 (2, second, ["bob", "ann"]), "the root sums its thread up")
    checks.equal((messages[2]["thread"], messages[2]["reply_to"]), (root, first), "a reply in the thread")
    checks.equal(("thread" in messages[3], messages[3]["reply_to"]), (False, root), "a reply outside it")
    page = client.request("history", room=room, thread=root)
    checks.equal([m["seq"] for m in page["messages"]], [root, first, second], "one thread's page, root first")
    later = client.request("history", room=room, thread=root, after=root, limit=1)
    checks.equal(([m["seq"] for m in later["messages"]], later["more"]), ([first], True), "paging a thread")
    refusals = [
        ({"thread": first}, "nested_thread", "a thread in a thread"),
        ({"thread": 99}, "no_such_message", "an unknown root"),
        ({"reply_to": 99}, "no_such_message", "an unknown message to answer"),
        ({"thread": 0}, "bad_field", "a root of 0"),
        ({"thread": "one"}, "bad_field", "a root that is no number"),
        ({"kind": "delete", "target": aside, "thread": root}, "bad_field", "a delete in a thread"),
    ]
    for fields, code, what in refusals:
        text = {} if "kind" in fields else {"body": "x"}
        reply = client.call("publish", room=room, user="bob", cmid=new_cmid(), **text, **fields)
        checks.equal(reply.get("code"), code, what)
    checks.equal(client.call("history", room=room, thread=first).get("code"), "no_such_message",
                 "history of a message that is no root")
    checks.equal(client.last_seq(room), aside, "no refusal stored anything")


def scenario_publish_and_follow(checks, client, ctx, state):
    """Publish N messages with two followers subscribed first, then check delivery.

    One follower sees the SUB stream as it comes; the other simulates lost and
    duplicated messages (including a lost tail) so every branch of the section 5
    algorithm runs. Both must deliver 1..N exactly once, in order, and never see
    the prefixed room's messages.
    """
    plain = Follower(ctx, state["pub"], client, ROOM, start=1)
    lossy = Follower(ctx, state["pub"], client, ROOM, start=1,
                     drop_nth={1, 2}, redeliver_nth={4}, drop={N - 1, N})
    try:
        published = []
        room2_seqs = []
        for i in range(1, N + 1):
            cmid = new_cmid()
            user = "ann" if i % 2 else "bob"
            body = f"message {i} from {user} \u2713"
            reply = client.publish(ROOM, user, body, cmid=cmid)
            published.append({"seq": reply["seq"], "user": user, "body": body, "cmid": cmid,
                              "ts": reply["ts"], "duplicate": reply["duplicate"],
                              "room": reply["room"]})
            if i % 5 == 0 or i == N - 1:
                # interleave: a leak would reach the SUB before py-room's later messages
                room2_seqs.append(
                    client.publish(ROOM2, "ann", f"other room {i}")["seq"])
        checks.equal([p["seq"] for p in published], list(range(1, N + 1)),
                     "publish seqs are 1..N in order")
        checks.check(all(p["duplicate"] is False for p in published),
                     "first publishes are not duplicates")
        checks.check(all(p["room"] == ROOM for p in published), "publish reply room")
        checks.check(all(isinstance(p["ts"], int) and p["ts"] > 1_600_000_000_000
                         for p in published), "publish ts is ms since the epoch")
        checks.equal(room2_seqs, list(range(1, len(room2_seqs) + 1)),
                     "prefixed room has its own seqs")
        state["published"] = published
        state["room2_count"] = len(room2_seqs)

        # Idempotent retry: same (room, user, cmid) -> same seq and ts, duplicate true.
        original = published[6]
        retry = client.publish(ROOM, original["user"], "a different body",
                               cmid=original["cmid"])
        checks.equal(retry["seq"], original["seq"], "retry returns the original seq")
        checks.equal(retry["ts"], original["ts"], "retry returns the original ts")
        checks.equal(retry["duplicate"], True, "retry is flagged duplicate")
        messages, _ = client.history(ROOM, limit=1000)
        checks.equal(len(messages), N, "history holds N messages after the retry")
        checks.equal(sum(1 for m in messages if m["cmid"] == original["cmid"]), 1,
                     "retried message is stored once")
        checks.equal(client.last_seq(ROOM), N, "last_seq unchanged by the retry")

        for name, follower in (("plain", plain), ("lossy", lossy)):
            follower.follow_until_caught_up()
            follower.drain(QUIET_PERIOD)   # anything late must be dropped as a duplicate
            seqs = [m["seq"] for m in follower.delivered]
            checks.equal(seqs, list(range(1, N + 1)),
                         f"{name} follower delivers 1..N exactly once in order")
            checks.equal(follower.foreign, [],
                         f"{name} follower never receives {ROOM2} or other topics")
            expected = [(p["seq"], p["user"], p["body"], p["cmid"], p["ts"])
                        for p in published]
            actual = [(m.get("seq"), m.get("user"), m.get("body"), m.get("cmid"), m.get("ts"))
                      for m in follower.delivered]
            checks.equal(actual, expected, f"{name} follower message contents")
            print(f"  {name} follower: {follower.received} from SUB, "
                  f"{follower.duplicates_dropped} duplicates dropped, "
                  f"{follower.gaps_repaired} gaps and {follower.idle_repairs} tails repaired "
                  f"from history", flush=True)
        from_sub = [m for m in plain.delivered if m.get("op") == "message"]
        if from_sub:
            m = from_sub[0]
            checks.equal(m.get("v"), 1, "SUB payload has v 1")
            missing = {"v", "op", "room", "seq", "user", "ts", "body", "cmid"} - set(m)
            checks.equal(missing, set(), "SUB payload has every message key")
        checks.check(lossy.idle_repairs >= 1, "lossy follower repaired a lost tail")
        if lossy.received >= 8:
            # positions 1-2 dropped, so position 3 shows a gap; position 4 came twice
            checks.check(lossy.gaps_repaired >= 1, "lossy follower repaired a gap")
            checks.check(lossy.duplicates_dropped >= 1, "lossy follower dropped a duplicate")
        else:
            print(f"  note: SUB lost {N - lossy.received} of {N} messages (slow joiner); "
                  f"gap and duplicate paths not exercised", flush=True)
    finally:
        plain.close()
        lossy.close()


def scenario_history(checks, client, state):
    """history: newest page, paging backwards with before, forwards with after."""
    published = state["published"]

    def seqs(messages):
        return [m["seq"] for m in messages]

    messages, more = client.history(ROOM)
    checks.equal(seqs(messages), list(range(1, N + 1)), "history default limit: all N")
    checks.equal(more, False, "history default: more false")
    checks.equal([(m["room"], m["user"], m["body"], m["cmid"], m["ts"]) for m in messages],
                 [(ROOM, p["user"], p["body"], p["cmid"], p["ts"]) for p in published],
                 "history message contents")

    # Backwards from the newest, 6 per page: 15..20, 9..14, 3..8, 1..2.
    pages, before = [], None
    while True:
        messages, more = client.history(ROOM, limit=6, before=before)
        pages.append((seqs(messages), more))
        if not more:
            break
        before = messages[0]["seq"]
        if len(pages) > 10:
            break
    checks.equal(pages, [(list(range(15, 21)), True), (list(range(9, 15)), True),
                         (list(range(3, 9)), True), ([1, 2], False)],
                 "history paging backwards (ascending pages, more false at the end)")

    # Exact boundary: the oldest page is full and nothing is older.
    messages, more = client.history(ROOM, limit=5, before=6)
    checks.equal((seqs(messages), more), ([1, 2, 3, 4, 5], False),
                 "history before=6 limit=5: more false with a full last page")

    # Forwards from the start, 7 per page: 1..7, 8..14, 15..20.
    pages, after = [], 0
    while True:
        messages, more = client.history(ROOM, limit=7, after=after)
        pages.append((seqs(messages), more))
        if not more:
            break
        after = messages[-1]["seq"]
        if len(pages) > 10:
            break
    checks.equal(pages, [(list(range(1, 8)), True), (list(range(8, 15)), True),
                         (list(range(15, 21)), False)],
                 "history paging forwards (ascending pages, more false at the end)")

    messages, more = client.history(ROOM, limit=5, after=15)
    checks.equal((seqs(messages), more), ([16, 17, 18, 19, 20], False),
                 "history after=15 limit=5: more false with a full last page")
    messages, more = client.history(ROOM, after=N)
    checks.equal((messages, more), ([], False), "history after the newest: empty")
    messages, more = client.history(ROOM, before=1)
    checks.equal((messages, more), ([], False), "history before 1: empty")
    messages, more = client.history(EMPTY_ROOM)
    checks.equal((messages, more), ([], False), "history of an empty room")
    reply = client.call("history", room=ROOM, before=10, after=2)
    checks.equal(reply.get("code"), "bad_field", "history with before and after")
    reply = client.call("history", room="py-missing")
    checks.equal(reply.get("code"), "no_such_room", "history of a missing room")


def scenario_last_seq(checks, client, state):
    """last_seq: newest seq per room, 0 for an empty room, error for a missing one."""
    reply = client.request("last_seq", room=ROOM)
    checks.equal((reply.get("room"), reply.get("seq")), (ROOM, N), "last_seq of the room")
    checks.equal(client.last_seq(ROOM2), state["room2_count"], "last_seq of the prefixed room")
    checks.equal(client.last_seq(EMPTY_ROOM), 0, "last_seq of an empty room")
    reply = client.call("last_seq", room="py-missing")
    checks.equal(reply.get("code"), "no_such_room", "last_seq of a missing room")


def scenario_read_state(checks, client, state):
    """mark_read and a user's rooms with summaries (sections 4.5, 4.9.1)."""
    last = client.last_seq(ROOM)
    reply = client.request("rooms", user="bob")
    summaries = {s["room"]: s for s in reply.get("summaries", [])}
    checks.check(ROOM in summaries, "a summary of each of bob's rooms", reply)
    s = summaries.get(ROOM, {})
    checks.equal(s.get("last_seq"), last, "summary: last_seq")
    checks.equal(s.get("unread"), last - s.get("read_seq", 0), "summary: unread = last_seq - read_seq")
    checks.equal(s.get("role"), "member", "summary: bob's role")
    checks.check(len(s.get("preview", "")) <= 100, "summary: a preview of at most 100 bytes", s)
    times = [x["last_ts"] for x in reply.get("summaries", [])]
    checks.equal(times, sorted(times, reverse=True), "summaries: newest activity first")
    marked = client.request("mark_read", room=ROOM, user="bob", seq=last)
    checks.equal((marked.get("room"), marked.get("seq"), marked.get("unread")), (ROOM, last, 0), "mark_read to the end")
    again = client.request("mark_read", room=ROOM, user="bob", seq=1)
    checks.equal(again.get("seq"), last, "an older seq leaves the marker where it is")
    reply = client.call("mark_read", room=ROOM, user="bob", seq=last + 1)
    checks.equal(reply.get("code"), "bad_field", "mark_read past the last seq")
    reply = client.call("mark_read", room=ROOM, user="py-nobody", seq=1)
    checks.equal(reply.get("code"), "not_member", "mark_read by a non-member")
    reply = client.call("mark_read", room="py-missing", user="bob", seq=1)
    checks.equal(reply.get("code"), "no_such_room", "mark_read in a missing room")
    s = {x["room"]: x for x in client.request("rooms", user="bob")["summaries"]}.get(ROOM, {})
    checks.equal((s.get("read_seq"), s.get("unread")), (last, 0), "summary after mark_read")
    checks.equal(s.get("mentions"), 0, "summary: no mentions unread")
    # Mentions (section 4.7), in a room of their own: members only, counted for them until
    # their marker passes.
    room = "py-mentions"
    client.request("create_room", room=room, user="ann")
    client.request("join", room=room, user="bob")
    reply = client.call("publish", room=room, user="ann", cmid="py-mention-0", body="hi", mentions=["py-nobody"])
    checks.equal(reply.get("code"), "bad_field", "a mention of a non-member")
    checks.equal(client.last_seq(room), 0, "a refused mention stores nothing")
    sent = client.request("publish", room=room, user="ann", cmid="py-mention-1", body="hi @bob", mentions=["bob"])
    page = client.request("history", room=room)
    checks.equal([m.get("mentions") for m in page.get("messages", [])], [["bob"]], "history carries mentions")
    s = {x["room"]: x for x in client.request("rooms", user="bob")["summaries"]}.get(room, {})
    checks.equal((s.get("unread"), s.get("mentions")), (1, 1), "summary: one mention unread")
    client.request("mark_read", room=room, user="bob", seq=sent.get("seq", 0))
    s = {x["room"]: x for x in client.request("rooms", user="bob")["summaries"]}.get(room, {})
    checks.equal(s.get("mentions"), 0, "summary: the mention read")
    client.request("delete_room", room=room)  # the scenarios after this one list the rooms


def scenario_pipelining(checks, client, state):
    """Several requests in flight at once: every reply matched to its request by id."""
    ids = {client.send("last_seq", room=ROOM): ("last_seq", N),
           client.send("ping"): ("ping", None),
           client.send("last_seq", room=EMPTY_ROOM): ("last_seq", 0),
           client.send("members", room=ROOM): ("members", ["ann", "bob"]),
           client.send("last_seq", room=ROOM2): ("last_seq", state["room2_count"])}
    results = []
    for request_id in reversed(list(ids)):    # claim in the opposite order to sending
        reply = client.receive(request_id)
        op, expected = ids[request_id]
        value = {"last_seq": reply.get("seq"), "members": reply.get("members"),
                 "ping": None}[op]
        results.append((reply.get("id"), reply.get("op"), value)
                       == (request_id, op, expected))
    checks.check(all(results), "pipelined replies matched by id", repr(results))


def scenario_publish_batch(checks, client, state):
    """publish_batch (section 4.7.1): one frame, a seq per item, retries answered with
    the original seqs, and a bad frame refused whole."""
    room = "py-batch"
    client.request("create_room", room=room, user="ann")
    items = [[f"batch-{i}", f"item {i}"] for i in range(50)]
    reply = client.request("publish_batch", room=room, user="ann", items=items)
    checks.equal(reply.get("room"), room, "publish_batch reply room")
    results = reply.get("results", [])
    checks.equal(len(results), 50, "a result per item")
    checks.equal([r[0] for r in results], list(range(1, 51)), "items take seqs 1..50 in order")
    checks.check(all(r[2] is False for r in results), "first items are not duplicates")
    checks.check(all(isinstance(r[1], int) and r[1] > 1_600_000_000_000 for r in results),
                 "each item has its ts")
    # The same frame again, and one of old and new items: nothing stored twice.
    again = client.request("publish_batch", room=room, user="ann", items=items[:3])
    checks.equal([(r[0], r[2]) for r in again["results"]], [(1, True), (2, True), (3, True)],
                 "a retried frame gets the original seqs, flagged duplicate")
    mixed = client.request("publish_batch", room=room, user="ann",
                           items=[items[49], ["batch-new", "new"], ["batch-new", "new again"]])
    checks.equal([(r[0], r[2]) for r in mixed["results"]], [(50, True), (51, False), (51, True)],
                 "old, new, and the new one repeated in the frame")
    messages, _ = client.history(room, limit=1000)
    checks.equal([m["seq"] for m in messages], list(range(1, 52)), "history holds each message once")
    checks.equal(messages[50]["body"], "new", "the first body of a repeated cmid is stored")
    # A single publish retrying a batch item.
    single = client.publish(room, "ann", "x", cmid="batch-7")
    checks.equal((single["seq"], single["duplicate"]), (8, True), "a publish retrying an item gets its seq")
    # Refused whole: nothing of a bad frame is stored.
    rid = client.send("publish_batch", room=room, user="ann", items=[["ok-1", "fine"], ["", "no cmid"]])
    expect_error(checks, client.receive(rid), "bad_field", rid, "an item without a cmid fails the frame")
    too_many = [[f"many-{i}", "x"] for i in range(state.get("max_batch", 1000) + 1)]
    rid = client.send("publish_batch", room=room, user="ann", items=too_many)
    expect_error(checks, client.receive(rid), "too_large", rid, "more items than max_batch")
    rid = client.send("publish_batch", room=room, user="nobody", items=[["n-1", "x"]])
    expect_error(checks, client.receive(rid), "not_member", rid, "a non-member's frame")
    checks.equal(client.last_seq(room), 51, "refused frames stored nothing")


def expect_error(checks, reply, code, request_id, what, ids=None):
    """Check an error reply's shape, code and echoed id (or one of `ids`)."""
    ids = (request_id,) if ids is None else ids
    checks.equal((reply.get("v"), reply.get("op"), reply.get("code"), reply.get("id") in ids),
                 (1, "error", code, True), f"{what} (id {reply.get('id')}, expected {ids})")
    checks.check(isinstance(reply.get("message"), str), f"{what}: message is text",
                 repr(reply.get("message")))


def scenario_retention(checks, client, ctx, state):
    """A room whose oldest messages were removed (sections 4.8, 4.13): a page asked below
    its first seq says `truncated` and `first_seq`, and a follower from seq 1 is told and
    then gets the rest in order, once each."""
    room = "py-trimmed"
    client.request("create_room", room=room, user="ann")
    for i in range(1, 21):
        client.publish(room, "ann", f"kept or not {i}")
    trim = client.request("trim_history", room=room, before=11)
    checks.equal((trim.get("room"), trim.get("first_seq")), (room, 11), "trim_history: where the room starts now")
    page = client.history_reply(room, after=0, limit=5)
    checks.equal((page.get("truncated"), page.get("first_seq"), [m["seq"] for m in page["messages"]]),
                 (True, 11, [11, 12, 13, 14, 15]), "history after 0 of a trimmed room: truncated, from first_seq on")
    page = client.history_reply(room, after=10, limit=5)
    checks.check("truncated" not in page and "first_seq" not in page,
                 "history after first_seq - 1: no truncated, no first_seq", page)
    page = client.history_reply(room, before=13)
    checks.equal(([m["seq"] for m in page["messages"]], page.get("truncated"), page.get("first_seq")),
                 ([11, 12], True, 11), "a backward page reaching the oldest message says truncated")
    page = client.history_reply(room, limit=5)
    checks.check("truncated" not in page, "the newest page short of the oldest: no truncated", page)
    setting = client.request("set_retention", room=room)
    checks.equal(setting.get("first_seq"), 11, "set_retention with no fields reads first_seq")
    follower = Follower(ctx, state["pub"], client, room, start=1)
    try:
        last = follower.idle_check()
        checks.equal(last, 20, "last_seq of the trimmed room")
        checks.equal(follower.truncated, [(1, 11)], "the follower from seq 1 is told the room starts at 11")
        checks.equal([m["seq"] for m in follower.delivered], list(range(11, 21)),
                     "the follower gets 11..20, in order, once each")
    finally:
        follower.close()
    client.request("delete_room", room=room)


def scenario_errors(checks, client, state):
    """Error replies (section 3) and that the node keeps serving afterwards."""
    # unknown op, with the request id echoed
    request_id = client.send("dance")
    expect_error(checks, client.receive(request_id), "unknown_op", request_id, "unknown op")

    # wrong version
    request_id = client.send("ping", version=2)
    expect_error(checks, client.receive(request_id), "unsupported_version", request_id,
                 "wrong version")

    # publish to a missing room
    request_id = client.send("publish", room="py-missing", user="ann", cmid=new_cmid(),
                             body="x")
    expect_error(checks, client.receive(request_id), "no_such_room", request_id,
                 "publish to a missing room")

    # publish by a non-member (carol joined and left; eve never joined)
    for user in ("carol", "eve"):
        request_id = client.send("publish", room=ROOM, user=user, cmid=new_cmid(), body="x")
        expect_error(checks, client.receive(request_id), "not_member", request_id,
                     f"publish by non-member {user}")

    # body that is not valid UTF-8, sent as a msgpack str (raw type, use_bin_type=False)
    request_id = client.new_id()
    frame = msgpack.packb({"v": 1, "op": "publish", "id": request_id, "room": ROOM,
                           "user": "ann", "cmid": new_cmid(), "body": b"bad \xff\xfe utf8"},
                          use_bin_type=False)
    try:
        msgpack.unpackb(frame, raw=False)
        checks.error("test frame should carry the body as a str with invalid UTF-8")
    except UnicodeDecodeError:
        checks.check(True, "test frame carries the body as a str with invalid UTF-8")
    client.send_frames([frame])
    expect_error(checks, client.receive(request_id), "bad_utf8", request_id,
                 "body not valid UTF-8")

    # field errors
    request_id = client.send("publish", room=ROOM, user="ann", cmid="", body="x")
    expect_error(checks, client.receive(request_id), "bad_field", request_id, "empty cmid")
    request_id = client.send("publish", room=ROOM, user="ann", body="x")
    expect_error(checks, client.receive(request_id), "bad_field", request_id, "missing cmid")
    request_id = client.send("publish", room=ROOM, user="ann", cmid=new_cmid(), body=5)
    expect_error(checks, client.receive(request_id), "bad_field", request_id,
                 "body of the wrong type")
    request_id = client.send("create_room", room="bad\x01name", user="ann")
    expect_error(checks, client.receive(request_id), "bad_field", request_id,
                 "room name with a control character")

    # a body over max_body. With the default limits max_body equals the per-string
    # frame limit, which is checked before `id` is read, so the reply may carry id 0.
    request_id = client.send("publish", room=ROOM, user="ann", cmid=new_cmid(),
                             body="x" * (state["max_body"] + 1))
    expect_error(checks, client.receive(request_id, or_id=0), "too_large", request_id,
                 "body over max_body", ids=(request_id, 0))
    body = "x" * state["max_body"]
    reply = client.publish(ROOM, "ann", body)
    checks.equal(reply["seq"], N + 1, "body of exactly max_body is accepted")
    state["stored"] = N + 1
    request_id = client.send("publish", room=ROOM, user="ann", cmid="c" * 65, body="x")
    expect_error(checks, client.receive(request_id), "too_large", request_id,
                 "cmid over 64 bytes")

    # frame-shape errors: checked before `id`, so the id may be 0
    request_id = client.new_id()
    client.send_frames([msgpack.packb({"v": 1, "op": "ping", "id": request_id}) + b"\x00"])
    expect_error(checks, client.receive(request_id, or_id=0), "bad_frame", request_id,
                 "trailing bytes after the map", ids=(request_id, 0))
    request_id = client.new_id()
    client.send_frames([msgpack.packb({"v": 1, "op": "ping", "id": request_id}), b"extra"])
    expect_error(checks, client.receive(request_id, or_id=0), "bad_frame", request_id,
                 "request of two frames", ids=(request_id, 0))

    # bytes that are not msgpack: bad_frame with id 0
    client.send_frames([b"\xc1 this is not msgpack"])
    expect_error(checks, client.receive(0), "bad_frame", 0, "frame that is not msgpack")

    # a msgpack value that is not a map
    client.send_frames([msgpack.packb([1, "ping", 3])])
    expect_error(checks, client.receive(0), "bad_frame", 0, "frame that is not a map")

    # none of the bad requests stored anything
    checks.equal(client.last_seq(ROOM), state["stored"], "bad publishes stored nothing")
    checks.equal(client.rooms(), sorted([ROOM, ROOM2, EMPTY_ROOM]),
                 "bad create_room stored nothing")

    # still alive
    checks.equal(client.ping().get("op"), "ping", "node answers ping after the errors")


# --------------------------------------------------------------------------- main

def main(argv):
    if len(argv) != 2:
        print(f"usage: {argv[0]} PATH_TO_SWITCHBOARD_BINARY", file=sys.stderr)
        return 2
    checks = Checks()
    node = Node(argv[1])
    ctx = zmq.Context()
    client = None
    try:
        try:
            match = node.start()
            print(node.ready_line, flush=True)
            checks.equal(match.group("durability"), "nosync", "ready line durability")
            checks.equal(match.group("data"), node.data_dir, "ready line data dir")
            load_curve_keys(os.path.join(node.data_dir, "keys"))
            checks.equal(re.search(r" curve=(\S+)", node.ready_line).group(1), CURVE["server"].decode(),
                         "ready line curve key is the node's public key")
        except Exception as e:
            checks.error(f"starting the node: {e}")
            raise
        client = Client(ctx, node.client_endpoint)
        state = {}
        scenarios = [
            ("hello", lambda: scenario_hello(checks, client, state)),
            ("rooms and members", lambda: scenario_rooms_and_members(checks, client, state)),
            ("publish and follow",
             lambda: scenario_publish_and_follow(checks, client, ctx, state)),
            ("history", lambda: scenario_history(checks, client, state)),
            ("last_seq", lambda: scenario_last_seq(checks, client, state)),
            ("read state", lambda: scenario_read_state(checks, client, state)),
            ("pipelining", lambda: scenario_pipelining(checks, client, state)),
            ("errors", lambda: scenario_errors(checks, client, state)),
            ("publish_batch", lambda: scenario_publish_batch(checks, client, state)),
            ("retention", lambda: scenario_retention(checks, client, ctx, state)),
            ("bans", lambda: scenario_bans(checks, client, state)),
            ("message life", lambda: scenario_message_life(checks, client, state)),
            ("threads", lambda: scenario_threads(checks, client, state)),
        ]
        for name, run in scenarios:
            print(f"scenario: {name}", flush=True)
            try:
                run()
            except Exception as e:
                traceback.print_exc()
                checks.error(f"scenario {name} aborted: {type(e).__name__}: {e}")
                if isinstance(e, RequestTimeout) and node.process.poll() is not None:
                    checks.error(f"node exited with status {node.process.returncode}")
                    break
        client.close()
        client = None
        status = node.stop()
        checks.equal(status, 0, "node exits with status 0 on SIGTERM")
    except Exception:
        pass
    finally:
        if client is not None:
            client.close()
        ctx.term()
        node.cleanup()
    if checks.failed:
        print("failed checks:")
        for failure in checks.failures:
            print(f"  {failure}")
    print(f"{checks.passed} passed, {checks.failed} failed", flush=True)
    return 0 if checks.failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
