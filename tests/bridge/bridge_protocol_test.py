#!/usr/bin/python3
"""The WebSocket bridge's protocol (docs/PROTOCOL.md section 10), tested with a real
WebSocket client (Debian's python3-websockets) against real `switchboard run` nodes.

Usage: bridge_protocol_test.py SWITCHBOARD_BINARY WEB_DIR [unittest args]

Every wait is on an event (a frame, a close, a ready line) with a deadline; nothing
sleeps in place of synchronisation.
"""
import asyncio
import base64
import http.client
import json
import os
import re
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.error
import urllib.parse
import urllib.request

import msgpack
import websockets

BINARY = None
WEB_DIR = None
WAIT = 20.0  # seconds any single expected event may take on a loaded 2-core box


class Node:
    """A `switchboard run` process; ready once it prints its ready line. Its log goes
    to a file, read by log()."""

    def __init__(self, *extra, args=None):
        self.data = tempfile.mkdtemp(prefix="switchboard-bridge-")
        if args is None:
            # These tests publish thousands of messages as one user: no rate limits,
            # unless a test sets them (RateLimits).
            limits = [] if "--limit" in extra else ["--limit", "publish_per_s=0", "--limit", "requests_per_s=0"]
            args = ["--data", self.data, "--listen", "tcp://127.0.0.1:*", "--durability", "nosync",
                    "--bridge", "127.0.0.1:*", "--web", WEB_DIR, *limits, *extra]
        self.log_path = os.path.join(self.data, "node.log")
        with open(self.log_path, "w") as log:
            self.proc = subprocess.Popen([BINARY, "run", *args], stdout=subprocess.PIPE, stderr=log, text=True)
        deadline = time.monotonic() + 30
        line = ""
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line or line.startswith("switchboard ready "):
                break
        self.ready = line
        m = re.search(r" bridge=(\S+)", line)
        if not m:
            self.stop()
            raise RuntimeError("the node did not become ready with a bridge; it printed: " + line +
                               "\nits log:\n" + self.log[-3000:])
        self.url = m.group(1)
        metrics = re.search(r" metrics=(\S+)", line)
        self.metrics = metrics.group(1) if metrics else None
        self.http = self.url.replace("ws", "http", 1)  # ws:// -> http://, wss:// -> https://

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        with open(self.log_path) as f:
            self.log = f.read()
        self.proc.stdout.close()
        shutil.rmtree(self.data, ignore_errors=True)
        return self.proc.returncode


class Conn:
    """One WebSocket connection speaking the bridge protocol, in JSON or msgpack."""

    def __init__(self, ws, binary=False):
        self.ws = ws
        self.binary = binary
        self.next_id = 1
        self.pushed = []   # room messages and presence events, in arrival order
        self.replies = {}  # id -> reply

    @classmethod
    async def open(cls, url, user=None, binary=False, **kwargs):
        ws = await websockets.connect(url, max_size=None, **kwargs)
        c = cls(ws, binary)
        if user is not None:
            reply = await c.call("auth", user=user)
            assert reply["op"] == "auth", reply
        return c

    async def send(self, op, **fields):
        rid = self.next_id
        self.next_id += 1
        frame = dict(op=op, id=rid, **fields)
        await self.ws.send(msgpack.packb(frame) if self.binary else json.dumps(frame))
        return rid

    async def read(self, timeout=WAIT):
        raw = await asyncio.wait_for(self.ws.recv(), timeout)
        if isinstance(raw, bytes):
            assert self.binary, "a binary frame on a JSON connection"
            frame = msgpack.unpackb(raw, raw=False)
        else:
            assert not self.binary, "a text frame on a msgpack connection"
            frame = json.loads(raw)
        if frame["op"] in ("message", "presence") or "id" not in frame:  # pushed, not a reply
            self.pushed.append(frame)
        else:
            self.replies[frame["id"]] = frame
        return frame

    async def reply(self, rid, timeout=WAIT):
        deadline = time.monotonic() + timeout
        while rid not in self.replies:
            await self.read(max(0.01, deadline - time.monotonic()))
        return self.replies.pop(rid)

    async def call(self, op, **fields):
        return await self.reply(await self.send(op, **fields))

    async def pushed_op(self, op, timeout=WAIT):
        """The first pushed frame of `op` (taken out of `pushed`), waiting for it."""
        deadline = time.monotonic() + timeout
        while True:
            for i, f in enumerate(self.pushed):
                if f["op"] == op:
                    return self.pushed.pop(i)
            await self.read(max(0.01, deadline - time.monotonic()))

    async def messages(self, room, count, timeout=WAIT):
        """Reads until `count` room messages of `room` have arrived; returns them."""
        deadline = time.monotonic() + timeout
        while len(self.of_room(room)) < count:
            await self.read(max(0.01, deadline - time.monotonic()))
        return self.of_room(room)

    async def event(self, kind, user, timeout=WAIT):
        """Reads until a presence event of `kind` about `user` has arrived."""
        deadline = time.monotonic() + timeout
        while not any(e["op"] == "presence" and e["kind"] == kind and e["user"] == user for e in self.pushed):
            await self.read(max(0.01, deadline - time.monotonic()))

    def of_room(self, room):
        return [m for m in self.pushed if m["op"] == "message" and m["room"] == room]

    async def closed(self, timeout=WAIT):
        """Reads until the bridge closes the connection; returns (code, reason)."""
        deadline = time.monotonic() + timeout
        try:
            while True:
                await self.read(max(0.01, deadline - time.monotonic()))
        except websockets.ConnectionClosed:
            return self.ws.close_code, self.ws.close_reason

    async def close(self):
        await self.ws.close()


async def publish_many(conn, room, count, body=lambda i: "message %d" % i, window=128):
    """Pipelined publishes, at most `window` in flight (the bridge allows 256); returns
    the acks in request order."""
    ids, acks = [], []
    for i in range(count):
        if len(ids) - len(acks) >= window:
            acks.append(await conn.reply(ids[len(acks)]))
        ids.append(await conn.send("publish", room=room, cmid="c%d-%d" % (time.monotonic_ns(), i), body=body(i)))
    acks += [await conn.reply(rid) for rid in ids[len(acks):]]
    for a in acks:
        assert a["op"] == "publish", a
    return acks


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 120))


class BridgeProtocol(unittest.TestCase):
    node = None

    @classmethod
    def setUpClass(cls):
        cls.node = Node("--bridge-handshake-ms", "1000")

    @classmethod
    def tearDownClass(cls):
        assert cls.node.stop() == 0

    def room(self):
        return "room-%s-%d" % (self.id().rsplit(".", 1)[-1], time.monotonic_ns())

    async def owner(self, user="ann", follow=True):
        """A fresh room, created (and followed) by `user`'s connection: (room, connection)."""
        room = self.room()
        conn = await Conn.open(self.node.url, user)
        self.assertTrue((await conn.call("create_room", room=room))["created"])
        if follow:
            self.assertEqual((await conn.call("subscribe", room=room))["op"], "subscribe")
        return room, conn

    def test_read_markers_and_the_room_list_with_unread_counts(self):
        async def go():
            room, ann = await self.owner(follow=False)
            bob = await Conn.open(self.node.url, "bob", binary=True)
            self.assertEqual((await bob.call("join", room=room))["op"], "join")
            await publish_many(ann, room, 5)
            mine = await bob.call("rooms", mine=True)
            (summary,) = [s for s in mine["summaries"] if s["room"] == room]
            self.assertEqual((summary["last_seq"], summary["read_seq"], summary["unread"]), (5, 0, 5))
            self.assertEqual((summary["last_user"], summary["preview"], summary["role"]), ("ann", "message 4", "member"))
            tab = await Conn.open(self.node.url, "bob")  # bob's second device
            marked = await bob.call("mark_read", room=room, seq=3, user="mallory")  # the connection's user, not the frame's
            self.assertEqual((marked["op"], marked["seq"], marked["unread"]), ("mark_read", 3, 2))
            # Every connection of bob's is told; nobody else is.
            pushed = await tab.pushed_op("read")
            self.assertEqual((pushed["room"], pushed["seq"]), (room, 3))
            self.assertNotIn("id", pushed)
            self.assertEqual((await bob.pushed_op("read"))["seq"], 3)
            await ann.call("ping")
            self.assertEqual([f for f in ann.pushed if f["op"] == "read"], [])
            back = await bob.call("mark_read", room=room, seq=1)
            self.assertEqual(back["seq"], 3, "a marker never moves back")
            past = await bob.call("mark_read", room=room, seq=6)
            self.assertEqual((past["op"], past["code"]), ("error", "bad_field"))
            self.assertEqual((await ann.call("mark_read", room=room, seq="3"))["code"], "bad_field")
            mine = await bob.call("rooms", mine=True)
            (summary,) = [s for s in mine["summaries"] if s["room"] == room]
            self.assertEqual((summary["read_seq"], summary["unread"]), (3, 2))
            everyone = await bob.call("rooms")
            self.assertNotIn("summaries", everyone, "only a user's own rooms carry summaries")
            self.assertEqual(summary["mentions"], 0)
            # Mentions: of members only (else nothing is stored), counted until read.
            outsider = await ann.call("publish", room=room, cmid="m0", body="hi @zed", mentions=["zed"])
            self.assertEqual((outsider["op"], outsider["code"]), ("error", "bad_field"))
            self.assertIn("'zed' is not a member", outsider["message"])
            self.assertEqual((await ann.call("last_seq", room=room))["seq"], 5, "nothing stored")
            await bob.call("subscribe", room=room, presence=False)
            ok = await ann.call("publish", room=room, cmid="m1", body="hi @bob", mentions=["bob"])
            self.assertEqual((ok["op"], ok["seq"]), ("publish", 6))
            message = await bob.pushed_op("message")
            self.assertEqual((message["seq"], message["mentions"]), (6, ["bob"]))
            mine = await bob.call("rooms", mine=True)
            (summary,) = [s for s in mine["summaries"] if s["room"] == room]
            self.assertEqual((summary["unread"], summary["mentions"]), (3, 1))
            page = await bob.call("history", room=room, after=5)
            self.assertEqual(page["messages"][0]["mentions"], ["bob"])
            await bob.call("mark_read", room=room, seq=6)
            mine = await bob.call("rooms", mine=True)
            (summary,) = [s for s in mine["summaries"] if s["room"] == room]
            self.assertEqual((summary["unread"], summary["mentions"]), (0, 0))
            self.assertEqual((await ann.call("publish", room=room, cmid="m2", body="x", mentions="bob"))["code"],
                             "bad_field")
            # Read receipts: private until the owner shares them, then every member's marker.
            self.assertEqual((await bob.call("read_markers", room=room))["code"], "forbidden")
            self.assertEqual((await bob.call("set_receipts", room=room, receipts=True))["code"], "forbidden")
            self.assertEqual((await ann.call("set_receipts", room=room, receipts=True))["changed"], True)
            markers = await bob.call("read_markers", room=room)
            self.assertEqual((markers["op"], markers["room"]), ("read_markers", room))
            self.assertEqual(markers["markers"], [{"user": "ann", "seq": 6}, {"user": "bob", "seq": 6}])
            await ann.close()
            await bob.close()
            await tab.close()
        run(go())

    def test_subscribe_publish_delivers_in_order_to_every_subscriber(self):
        async def go():
            room = self.room()
            ann = await Conn.open(self.node.url, "ann")
            bob = await Conn.open(self.node.url, "bob")
            self.assertTrue((await ann.call("create_room", room=room))["created"])
            self.assertEqual((await bob.call("join", room=room))["op"], "join")
            sub = await bob.call("subscribe", room=room)
            self.assertEqual(sub["op"], "subscribe")
            self.assertEqual(sub["last_seq"], 0)
            acks = await publish_many(ann, room, 200)
            self.assertEqual([a["seq"] for a in acks], list(range(1, 201)))
            got = await bob.messages(room, 200)
            self.assertEqual([m["seq"] for m in got], list(range(1, 201)))
            self.assertEqual([m["body"] for m in got], ["message %d" % i for i in range(200)])
            self.assertEqual({m["user"] for m in got}, {"ann"})
            # Nothing more arrives: a ping's reply comes before any further message.
            await bob.call("ping")
            self.assertEqual(len(bob.of_room(room)), 200)
            await ann.close()
            await bob.close()
        run(go())

    def test_edits_deletes_and_reactions_arrive_live_and_history_shows_messages_as_they_are(self):
        async def go():
            room, ann = await self.owner()
            bob = await Conn.open(self.node.url, "bob")
            self.assertEqual((await bob.call("join", room=room))["op"], "join")
            self.assertEqual((await bob.call("subscribe", room=room))["op"], "subscribe")
            first = await ann.call("publish", room=room, cmid="m1", body="helo")
            edit = await ann.call("publish", room=room, cmid="e1", kind="edit", target=first["seq"], body="hello")
            react = await bob.call("publish", room=room, cmid="r1", kind="react", target=first["seq"], key="\u2764")
            self.assertEqual((edit["seq"], react["seq"]), (2, 3))
            refused = await bob.call("publish", room=room, cmid="d0", kind="delete", target=first["seq"])
            self.assertEqual((refused["op"], refused["code"]), ("error", "forbidden"))
            got = await bob.messages(room, 3)
            self.assertEqual([m.get("kind") for m in got], [None, "edit", "react"])
            self.assertEqual((got[1]["target"], got[1]["body"]), (1, "hello"))
            self.assertEqual((got[2]["key"], got[2]["on"]), ("\u2764", True))
            page = await bob.call("history", room=room)
            message = page["messages"][0]
            self.assertEqual((message["body"], message["reactions"], message["mine"]), ("hello", {"\u2764": 1}, ["\u2764"]))
            self.assertEqual(message["edited_ts"], edit["ts"])
            removed = await ann.call("publish", room=room, cmid="d1", kind="delete", target=first["seq"])
            gone = (await bob.messages(room, 4))[3]
            self.assertEqual((gone["seq"], gone["kind"], gone["target"]), (removed["seq"], "delete", 1))
            page = await ann.call("history", room=room)
            self.assertEqual([(m["body"], m.get("deleted")) for m in page["messages"][:2]], [("", True), ("", True)])
            await ann.close()
            await bob.close()
        run(go())

    def test_the_user_is_the_connections_own_not_the_frames(self):
        async def go():
            room, ann = await self.owner()
            ack = await ann.call("publish", room=room, user="mallory", cmid="x1", body="who am I")
            self.assertEqual(ack["op"], "publish")
            (m,) = await ann.messages(room, 1)
            self.assertEqual(m["user"], "ann")
            members = await ann.call("members", room=room)
            self.assertEqual(members["members"], ["ann"])
        run(go())

    def test_history_pages(self):
        async def go():
            room, ann = await self.owner(follow=False)
            await publish_many(ann, room, 30)
            newest = await ann.call("history", room=room, limit=10)
            self.assertEqual([m["seq"] for m in newest["messages"]], list(range(21, 31)))
            self.assertTrue(newest["more"])
            older = await ann.call("history", room=room, limit=10, before=21)
            self.assertEqual([m["seq"] for m in older["messages"]], list(range(11, 21)))
            after = await ann.call("history", room=room, after=25)
            self.assertEqual([m["seq"] for m in after["messages"]], list(range(26, 31)))
            self.assertFalse(after["more"])
            self.assertEqual((await ann.call("last_seq", room=room))["seq"], 30)
            missing = await ann.call("history", room=room + "-none")
            self.assertEqual((missing["op"], missing["code"]), ("error", "no_such_room"))
        run(go())

    def test_retention_trims_and_history_and_subscriptions_say_where_the_room_starts(self):
        async def go():
            room, ann = await self.owner(follow=False)
            kept = await ann.call("set_retention", room=room, max_messages=10)
            self.assertEqual((kept["op"], kept["max_messages"], kept["applied_max_messages"]),
                             ("set_retention", 10, 10), kept)
            hold = await ann.call("set_retention", room=room, legal_hold=True)
            self.assertEqual((hold["op"], hold["code"]), ("error", "forbidden"), "a user sets no legal hold")
            await publish_many(ann, room, 30)
            deadline = time.monotonic() + WAIT
            while (await ann.call("set_retention", room=room))["first_seq"] != 21:  # trimmed once a second
                self.assertLess(time.monotonic(), deadline, "the room was not trimmed to its newest 10")
                await asyncio.sleep(0.05)
            page = await ann.call("history", room=room, after=0)
            self.assertEqual([m["seq"] for m in page["messages"]], list(range(21, 31)))
            self.assertEqual((page["truncated"], page["first_seq"]), (True, 21))
            whole = await ann.call("history", room=room, after=25)
            self.assertNotIn("truncated", whole)
            bob = await Conn.open(self.node.url, "bob")
            await bob.call("subscribe", room=room, after=0)
            told = await bob.pushed_op("truncated")
            self.assertEqual((told["room"], told["first_seq"]), (room, 21))
            self.assertEqual([m["seq"] for m in await bob.messages(room, 10)], list(range(21, 31)))
        run(go())

    def test_resume_after_disconnect_has_no_gap_and_no_duplicate(self):
        async def go():
            room = self.room()
            ann = await Conn.open(self.node.url, "ann")
            await ann.call("create_room", room=room)
            bob = await Conn.open(self.node.url, "bob")
            await bob.call("subscribe", room=room, after=0)
            await publish_many(ann, room, 40)
            first = await bob.messages(room, 40)
            last = first[-1]["seq"]
            await bob.close()
            # While bob is away: more than one catch-up page (500) is published.
            await publish_many(ann, room, 1200)
            bob = await Conn.open(self.node.url, "bob")
            sub = await bob.call("subscribe", room=room, after=last)
            self.assertEqual(sub["last_seq"], 1240)
            # And more arrive live while bob catches up.
            live = asyncio.create_task(publish_many(ann, room, 100))
            got = await bob.messages(room, 1340 - last, timeout=60)
            await live
            seqs = [m["seq"] for m in got]
            self.assertEqual(seqs, list(range(last + 1, 1341)))
            await bob.call("ping")
            self.assertEqual(len(bob.of_room(room)), 1300)
        run(go())

    def test_subscribing_from_the_start_gets_the_whole_room_once(self):
        async def go():
            room, ann = await self.owner(follow=False)
            await publish_many(ann, room, 25)
            bob = await Conn.open(self.node.url, "bob")
            carol = await Conn.open(self.node.url, "carol")
            await bob.call("subscribe", room=room, after=0)
            await carol.call("subscribe", room=room)  # only new messages
            await publish_many(ann, room, 5)
            self.assertEqual([m["seq"] for m in await bob.messages(room, 30)], list(range(1, 31)))
            self.assertEqual([m["seq"] for m in await carol.messages(room, 5)], list(range(26, 31)))
            unsub = await bob.call("unsubscribe", room=room)
            self.assertTrue(unsub["unsubscribed"])
            await publish_many(ann, room, 3)
            await carol.messages(room, 8)
            await bob.call("ping")
            self.assertEqual(len(bob.of_room(room)), 30, "messages after unsubscribe")
        run(go())

    def test_msgpack_binary_frames_carry_the_same_messages(self):
        async def go():
            room = self.room()
            ann = await Conn.open(self.node.url, "ann", binary=True)
            self.assertTrue((await ann.call("create_room", room=room))["created"])
            await ann.call("subscribe", room=room, after=0)
            acks = await publish_many(ann, room, 10, body=lambda i: "héllo %d ✓" % i)
            self.assertEqual([a["seq"] for a in acks], list(range(1, 11)))
            got = await ann.messages(room, 10)
            self.assertEqual([m["body"] for m in got], ["héllo %d ✓" % i for i in range(10)])
            bad = await ann.call("publish", room=room, cmid="z", body=b"\xff bytes")
            self.assertEqual(bad["op"], "error")
        run(go())

    def test_presence_who_and_typing(self):
        async def go():
            room, ann = await self.owner()
            bob = await Conn.open(self.node.url, "bob")
            await bob.call("join", room=room)
            # The join reaches presence after chat stored it: once ann sees bob's join
            # event, presence knows him as a member (he is online since his auth reply).
            await ann.event("join", "bob")
            who = await ann.call("who", room=room)
            self.assertEqual([u["user"] for u in who["users"]], ["ann", "bob"])
            self.assertEqual((await bob.call("typing", room=room))["op"], "typing")
            await ann.event("typing", "bob")
            await bob.close()  # a clean leave: bob's session closes at once
            await ann.event("offline", "bob")
            who = await ann.call("who", room=room)
            self.assertEqual([u["user"] for u in who["users"]], ["ann"])
        run(go())

    def test_roles_and_private_rooms(self):
        async def go():
            room, ann = await self.owner(follow=False)
            self.assertTrue((await ann.call("delete_room", room=room))["deleted"])
            room = self.room()
            self.assertTrue((await ann.call("create_room", room=room, private=True))["created"])
            self.assertEqual((await ann.call("publish", room=room, cmid="a1", body="for members"))["seq"], 1)
            eve = await Conn.open(self.node.url, "eve")
            # Not a member: the room is not there, whatever eve asks: each answer is word
            # for word a missing room's.
            missing = "missing-%d" % time.monotonic_ns()
            for op, fields in (("history", {}), ("history", dict(before=5)), ("subscribe", {}),
                               ("subscribe", dict(after=0)), ("who", {}), ("members", {}), ("join", {}),
                               ("leave", {}), ("last_seq", {}), ("publish", dict(cmid="e1", body="x")),
                               ("typing", {}), ("add_member", dict(user="eve")), ("remove_member", dict(user="ann")),
                               ("ban", dict(user="ann")), ("unban", dict(user="ann")),
                               ("set_role", dict(user="ann", role="reader")), ("delete_room", {})):
                r = await eve.call(op, room=room, **fields)
                m = await eve.call(op, room=missing, **fields)
                self.assertEqual((r["op"], r.get("code")), ("error", "no_such_room"), op)
                self.assertEqual(r["message"].replace(room, "ROOM"), m["message"].replace(missing, "ROOM"), op)
            r = await eve.call("unsubscribe", room=room)
            self.assertEqual((r["op"], r["unsubscribed"]), ("unsubscribe", False), "as for any room not followed")
            r = await eve.call("create_room", room=room)
            self.assertEqual((r["op"], r["code"]), ("error", "name_unavailable"), "not created: false")
            self.assertNotIn(room, (await eve.call("rooms"))["rooms"])
            self.assertIn(room, (await ann.call("rooms"))["rooms"])
            # A member may not manage.
            r = await eve.call("add_member", room=room, user="eve")
            self.assertEqual(r["code"], "no_such_room")

            # Added as a reader: eve follows and reads, and may not publish.
            self.assertTrue((await ann.call("add_member", room=room, user="eve", role="reader"))["added"])
            self.assertEqual((await eve.call("subscribe", room=room, after=0))["op"], "subscribe")
            self.assertEqual([m["body"] for m in await eve.messages(room, 1)], ["for members"])
            r = await eve.call("publish", room=room, cmid="e2", body="may I?")
            self.assertEqual((r["op"], r["code"]), ("error", "forbidden"))
            members = await eve.call("members", room=room)
            self.assertEqual(list(zip(members["members"], members["roles"])), [("ann", "owner"), ("eve", "reader")])
            for op, fields in (("remove_member", dict(user="ann")), ("set_role", dict(user="eve", role="owner")),
                               ("ban", dict(user="ann")), ("delete_room", {})):
                r = await eve.call(op, room=room, **fields)
                self.assertEqual((r["op"], r["code"]), ("error", "forbidden"), op)
            r = await ann.call("set_role", room=room, user="eve", role="boss")
            self.assertEqual(r["code"], "bad_field")

            # Made a member, eve publishes; removed, the room is gone for her again.
            self.assertTrue((await ann.call("set_role", room=room, user="eve", role="member"))["changed"])
            self.assertEqual((await eve.call("publish", room=room, cmid="e3", body="thanks"))["seq"], 2)
            self.assertTrue((await ann.call("remove_member", room=room, user="eve"))["removed"])
            # Her subscription ends: the bridge says so, and delivers nothing more of it.
            deadline = time.monotonic() + WAIT
            while not any(f["op"] == "unsubscribed" and f["room"] == room for f in eve.pushed):
                await eve.read(max(0.01, deadline - time.monotonic()))
            r = await eve.call("history", room=room)
            self.assertEqual(r["code"], "no_such_room")
            # Added back and following, then banned: her subscription ends as with a removal,
            # and no owner adds her again until she is unbanned.
            self.assertTrue((await ann.call("add_member", room=room, user="eve"))["added"])
            self.assertEqual((await eve.call("subscribe", room=room, after=2))["op"], "subscribe")
            eve.pushed.clear()  # banned right after the subscribe's answer: it still ends
            self.assertTrue((await ann.call("ban", room=room, user="eve"))["banned"])
            deadline = time.monotonic() + WAIT
            while not any(f["op"] == "unsubscribed" and f["room"] == room for f in eve.pushed):
                await eve.read(max(0.01, deadline - time.monotonic()))
            r = await ann.call("add_member", room=room, user="eve")
            self.assertEqual((r["op"], r["code"]), ("error", "forbidden"), "banned: unban first")
            self.assertFalse((await ann.call("ban", room=room, user="eve"))["banned"])
            self.assertTrue((await ann.call("unban", room=room, user="eve"))["unbanned"])
            self.assertEqual((await eve.call("history", room=room))["code"], "no_such_room", "unbanned, not a member")
            # Deleted, it is gone for its owner too.
            self.assertTrue((await ann.call("delete_room", room=room))["deleted"])
            self.assertEqual((await ann.call("history", room=room))["code"], "no_such_room")
            await eve.close()
            await ann.close()
        run(go())

    def test_bad_input_gets_an_error_and_never_disturbs_others(self):
        async def go():
            room, ann = await self.owner()

            c = await Conn.open(self.node.url)
            e = await c.call("publish", room=room, cmid="x", body="before auth")
            self.assertEqual(e["code"], "unauthenticated")
            e = await c.call("auth", user="bad\nname")
            self.assertEqual(e["code"], "bad_field")
            e = await c.call("auth", token="abc.def")
            self.assertEqual(e["code"], "bad_field")
            self.assertEqual((await c.call("auth", user="eve"))["op"], "auth")
            e = await c.call("dance")
            self.assertEqual((e["code"], e["id"]), ("unknown_op", 5))
            e = await c.call("subscribe", room=5)
            self.assertEqual(e["code"], "bad_field")
            e = await c.call("subscribe", room=room, after=-1)
            self.assertEqual(e["code"], "bad_field")
            e = await c.call("publish", room=room, cmid="x", body=["not", "text"])
            self.assertEqual(e["code"], "bad_field")
            e = await c.call("subscribe", room=room, presence="yes")  # a wrong type is the default
            self.assertEqual(e["op"], "subscribe")
            e = await c.call("history", room="r" * 129)
            self.assertEqual(e["code"], "too_large")
            await c.ws.send(json.dumps({"op": "ping"}))
            self.assertEqual((await c.read())["code"], "bad_field")
            await c.ws.send(json.dumps({"op": "ping", "id": 1.5}))
            self.assertEqual((await c.read())["code"], "bad_field")
            self.assertEqual((await c.call("ping"))["op"], "ping", "the connection still serves")

            # Frames that are not one JSON object: an error, then a close (1007).
            for frame in ["not json", "[1, 2]", "{\"op\": ", json.dumps({"a": [[[[[[[[[[1]]]]]]]]]]})]:
                c = await Conn.open(self.node.url, "eve")
                await c.ws.send(frame)
                e = await c.read()
                self.assertEqual((e["op"], e["id"]), ("error", 0), frame)
                self.assertIn(e["code"], ("bad_frame", "too_large"))
                self.assertEqual((await c.closed())[0], 1007, frame)
            # A binary frame that is not msgpack.
            c = await Conn.open(self.node.url, "eve", binary=True)
            await c.ws.send(b"\xc1\x00garbage")
            self.assertEqual((await c.read())["code"], "bad_frame")
            self.assertEqual((await c.closed())[0], 1007)
            # An oversized frame: closed with 1009 (message too big).
            c = await Conn.open(self.node.url, "eve")
            await c.ws.send(json.dumps({"op": "publish", "id": 1, "room": room, "cmid": "big", "body": "x" * 200_000}))
            self.assertEqual((await c.closed())[0], 1009)

            # Everyone else is still served, in order.
            await publish_many(ann, room, 3)
            self.assertEqual([m["seq"] for m in await ann.messages(room, 3)], [1, 2, 3])
            fresh = await Conn.open(self.node.url, "fred")
            self.assertEqual((await fresh.call("last_seq", room=room))["seq"], 3)
        run(go())

    def test_too_many_subscriptions(self):
        async def go():
            ann = await Conn.open(self.node.url, "ann")
            base = self.room()
            rooms = [base + "-%d" % i for i in range(129)]
            ids = [await ann.send("create_room", room=r) for r in rooms]
            for rid in ids:
                self.assertEqual((await ann.reply(rid))["op"], "create_room")
            ids = [await ann.send("subscribe", room=r) for r in rooms]
            replies = [await ann.reply(rid) for rid in ids]
            self.assertEqual([r["op"] for r in replies[:128]], ["subscribe"] * 128)
            self.assertEqual(replies[128]["code"], "too_many_subscriptions")
            self.assertTrue((await ann.call("unsubscribe", room=rooms[0]))["unsubscribed"])
            self.assertEqual((await ann.call("subscribe", room=rooms[128]))["op"], "subscribe")
        run(go())

    def test_a_connection_that_never_authenticates_is_closed(self):
        async def go():
            c = await Conn.open(self.node.url)
            start = time.monotonic()
            code, _ = await c.closed()
            self.assertEqual(code, 4001)
            self.assertLess(time.monotonic() - start, 10)
        run(go())

    def test_a_bad_bridge_address_is_refused(self):
        for bad in ["nonsense", "localhost:7410", "127.0.0.1:99999"]:
            r = subprocess.run([BINARY, "run", "--data", self.node.data, "--bridge", bad], capture_output=True,
                               text=True, timeout=WAIT)
            self.assertEqual(r.returncode, 2, bad)
            self.assertIn("HOST:PORT", r.stderr)

    def test_static_files(self):
        with urllib.request.urlopen(self.node.http) as r:
            self.assertEqual(r.status, 200)
            self.assertIn("text/html", r.headers["Content-Type"])
            self.assertIn(b"Switchboard", r.read())
        for path in ["no-such-file.js", "../CMakeLists.txt", "%2e%2e/CMakeLists.txt"]:
            with self.assertRaises(urllib.error.HTTPError) as e:
                urllib.request.urlopen(self.node.http + path)
            self.assertEqual(e.exception.code, 404, path)


def raw_http(node, request, timeout=WAIT):
    """Sends `request` (bytes, exactly as given: no normalisation of the target) to the
    node's bridge and reads one answer: its headers, and its body as Content-Length says
    (none for HEAD and 101), or until the bridge closes; returns (status, headers, body)."""
    host, port = re.match(r"wss?://([^:/]+):(\d+)/", node.url).groups()
    raw = socket.create_connection((host, int(port)), timeout=timeout)
    raw.sendall(request)
    no_body = request.startswith(b"HEAD ")
    received = b""
    try:
        while chunk := raw.recv(65536):
            received += chunk
            head, sep, body = received.partition(b"\r\n\r\n")
            if sep:
                length = re.search(rb"(?i)\r\ncontent-length: *(\d+)", head)
                if no_body or head.startswith(b"HTTP/1.1 101") or (length and len(body) >= int(length.group(1))):
                    break
    finally:
        raw.close()
    head, _, body = received.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1]) if lines[0].startswith("HTTP/") else None
    headers = {k.strip().lower(): v.strip() for k, _, v in (l.partition(":") for l in lines[1:])}
    return status, headers, body


def get(target, host="127.0.0.1", method="GET", extra=""):
    if isinstance(target, str):
        target = target.encode("latin-1")
    connection = "" if "Connection:" in extra else "Connection: close\r\n"
    return (method.encode() + b" " + target + b" HTTP/1.1\r\nHost: " + host.encode() + b"\r\n" +
            connection.encode() + extra.encode() + b"\r\n")


UPGRADE = ("Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
           "Sec-WebSocket-Version: 13\r\n")


class KickAndDisconnect(unittest.TestCase):
    """An owner's kick ends the user's following of the room on each of their connections
    (their membership ends as with remove_member); an operator's disconnect (over the HTTP
    API here) closes every connection of the user with close code 4009. Others keep
    theirs."""

    def test_kick_ends_following_and_disconnect_closes_every_connection(self):
        node = Node("--api", "127.0.0.1:*")
        try:
            api_url = re.search(r" api=(\S+)", node.ready).group(1)
            with open(os.path.join(node.data, "keys", "api.key")) as f:
                key = f.readline().strip()

            def api(op, body):
                parts = urllib.parse.urlsplit(api_url)
                conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=WAIT)
                try:
                    conn.request("POST", parts.path + op, json.dumps(body), {"Authorization": "Bearer " + key})
                    response = conn.getresponse()
                    return response.status, json.loads(response.read())
                finally:
                    conn.close()

            async def go():
                ann = await Conn.open(node.url, "ann")
                self.assertTrue((await ann.call("create_room", room="lounge"))["created"])
                self.assertTrue((await ann.call("create_room", room="den"))["created"])
                phone, laptop = await Conn.open(node.url, "bob"), await Conn.open(node.url, "bob")
                for conn in (phone, laptop):
                    for room in ("lounge", "den"):
                        self.assertTrue((await conn.call("join", room=room))["op"] in ("join",))
                        self.assertEqual((await conn.call("subscribe", room=room))["op"], "subscribe")
                r = await phone.call("kick", room="lounge", user="ann")
                self.assertEqual((r["op"], r["code"]), ("error", "forbidden"), "only an owner kicks")
                r = await ann.call("kick", room="lounge", user="ann")
                self.assertEqual((r["op"], r["code"]), ("error", "forbidden"), "nobody kicks themselves")
                self.assertTrue((await ann.call("kick", room="lounge", user="bob"))["removed"])
                for conn in (phone, laptop):
                    frame = await conn.pushed_op("unsubscribed")
                    self.assertEqual((frame["room"], frame["reason"]), ("lounge", "you were kicked from the room"))
                self.assertFalse((await ann.call("kick", room="lounge", user="bob"))["removed"], "not a member now")
                members = (await ann.call("members", room="lounge"))["members"]
                self.assertEqual(members, ["ann"])
                r = await phone.call("publish", room="lounge", cmid="b1", body="still here?")
                self.assertEqual(r["code"], "not_member")
                # The other room is untouched: bob still gets its messages.
                await ann.call("publish", room="den", cmid="a1", body="den news")
                self.assertEqual([m["body"] for m in await laptop.messages("den", 1)], ["den news"])

                status, reply = await asyncio.to_thread(api, "disconnect", {"user": "bob"})
                self.assertEqual((status, reply), (200, {"op": "disconnect"}))
                for conn in (phone, laptop):
                    self.assertEqual(await conn.closed(), (4009, "disconnected by an operator"))
                self.assertEqual((await ann.call("ping"))["op"], "ping", "ann's connection stays")
                status, reply = await asyncio.to_thread(api, "disconnect", {"user": "bob", "as": "ann"})
                self.assertEqual((status, reply["code"]), (403, "forbidden"), "an operator's, not a user's")
                await ann.close()

            run(go())
        finally:
            self.assertEqual(node.stop(), 0)


class WebServer(unittest.TestCase):
    """The bridge's HTTP side: only files inside --web, only pages of its own (or listed)
    origins open a WebSocket, and every answer carries the headers a page needs."""

    @classmethod
    def setUpClass(cls):
        cls.node = Node("--bridge-origin", "https://chat.example.com")

    @classmethod
    def tearDownClass(cls):
        assert cls.node.stop() == 0

    def status(self, target):
        return raw_http(self.node, get(target))[0]

    def test_only_regular_files_inside_the_web_root_are_served(self):
        self.assertEqual(self.status("/"), 200)
        self.assertEqual(self.status("/app.js"), 200)
        key = os.path.join(self.node.data, "keys", "node.key")
        self.assertTrue(os.path.isfile(key))
        inside = os.path.join(WEB_DIR, "app.js")
        for target in ["/" + key, "//etc/passwd", "/%2F" + key[1:], "/%2f" + "etc/passwd",
                       "/../CMakeLists.txt", "/%2e%2e/CMakeLists.txt", "/%2E%2E/%2E%2E/etc/passwd",
                       "/.%2e/CMakeLists.txt", "/%252e%252e/CMakeLists.txt", "/..%5cCMakeLists.txt",
                       "/..\\CMakeLists.txt", "/index.html%00", "/app.js%00.png", "/" + inside,
                       "/no-such-file.js", "/./index.html"]:
            self.assertEqual(self.status(target), 404, target)

    def test_a_symlink_out_of_the_web_root_is_not_followed(self):
        web = tempfile.mkdtemp(prefix="switchboard-web-")
        try:
            shutil.copy(os.path.join(WEB_DIR, "index.html"), web)
            data = tempfile.mkdtemp(prefix="switchboard-bridge-")
            node = Node(args=["--data", data, "--listen", "tcp://127.0.0.1:*", "--bridge", "127.0.0.1:*",
                              "--web", web])
            try:
                os.symlink(os.path.join(data, "keys", "node.key"), os.path.join(web, "key.txt"))
                os.symlink(os.path.join(data, "keys"), os.path.join(web, "keys"))
                os.symlink("index.html", os.path.join(web, "home.html"))
                self.assertEqual(raw_http(node, get("/key.txt"))[0], 404)
                self.assertEqual(raw_http(node, get("/keys/node.key"))[0], 404)
                self.assertEqual(raw_http(node, get("/home.html"))[0], 200)
            finally:
                self.assertEqual(node.stop(), 0)
                shutil.rmtree(data, ignore_errors=True)
        finally:
            shutil.rmtree(web, ignore_errors=True)

    def test_answers_carry_the_security_headers_and_head_is_get_without_a_body(self):
        status, headers, body = raw_http(self.node, get("/"))
        self.assertEqual(status, 200)
        self.assertEqual(headers["x-content-type-options"], "nosniff")
        self.assertEqual(headers["x-frame-options"], "DENY")
        csp = headers["content-security-policy"]
        for directive in ("default-src 'none'", "script-src 'self'", "frame-ancestors 'none'"):
            self.assertIn(directive, csp)
        self.assertIn(b"Switchboard", body)
        status, head_headers, head_body = raw_http(self.node, get("/", method="HEAD"))
        self.assertEqual(status, 200)
        self.assertEqual(head_body, b"")
        self.assertEqual(head_headers["content-length"], str(len(body)))
        self.assertEqual(head_headers["content-type"], headers["content-type"])
        status, headers, _ = raw_http(self.node, get("/no-such-file"))
        self.assertEqual((status, headers["x-content-type-options"]), (404, "nosniff"))
        self.assertEqual(raw_http(self.node, get("/", method="POST"))[0], 405)

    def test_over_long_requests_get_414_and_431_not_a_reset(self):
        self.assertEqual(raw_http(self.node, get("/" + "a" * 20000))[0], 414)
        self.assertEqual(raw_http(self.node, get("/", extra="X-Filler: " + "b" * 20000 + "\r\n"))[0], 431)
        self.assertEqual(self.status("/"), 200, "it still serves")

    def test_only_the_bridges_own_page_and_listed_origins_open_a_websocket(self):
        host = re.match(r"wss?://([^/]+)/", self.node.url).group(1)
        port = host.rsplit(":", 1)[1]

        def upgrade(origin=None, host=host):
            extra = UPGRADE + ("Origin: %s\r\n" % origin if origin is not None else "")
            return raw_http(self.node, get("/", host=host, extra=extra))

        for origin in [None, "http://" + host, "http://localhost:" + port, "https://chat.example.com"]:
            self.assertEqual(upgrade(origin, host if origin is None or "localhost" not in origin
                                     else "localhost:" + port)[0], 101, origin)
        for origin in ["http://evil.example", "null", "http://127.0.0.1:1", "https://" + host,
                       "http://chat.example.com"]:
            status, _, body = upgrade(origin)
            self.assertEqual(status, 403, origin)
            self.assertIn(b"--bridge-origin", body)
        # DNS rebinding: a page of evil.example whose name now points here.
        status, _, body = upgrade("http://evil.example:" + port, "evil.example:" + port)
        self.assertEqual(status, 403)
        self.assertIn(b"Host", body)

        async def go():
            with self.assertRaises(websockets.InvalidStatusCode) as e:
                await websockets.connect(self.node.url, origin="http://evil.example")
            self.assertEqual(e.exception.status_code, 403)
            c = await Conn.open(self.node.url, "ann", origin="http://" + host)
            self.assertEqual((await c.call("ping"))["op"], "ping")
            await c.close()
        run(go())

    def test_star_admits_any_origin(self):
        node = Node("--bridge-origin", "*")
        try:
            async def go():
                c = await Conn.open(node.url, "ann", origin="http://evil.example")
                self.assertEqual((await c.call("ping"))["op"], "ping")
                await c.close()
            run(go())
        finally:
            self.assertEqual(node.stop(), 0)

    def test_a_web_directory_that_is_not_one_stops_the_start_naming_it(self):
        data = tempfile.mkdtemp(prefix="switchboard-bridge-")
        try:
            missing = os.path.join(data, "no-such-web")
            r = subprocess.run([BINARY, "run", "--data", data, "--listen", "tcp://127.0.0.1:*", "--bridge",
                                "127.0.0.1:*", "--web", missing], capture_output=True, text=True, timeout=60)
        finally:
            shutil.rmtree(data, ignore_errors=True)
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertNotIn("switchboard ready", r.stdout)
        self.assertIn(missing, r.stderr)

    def test_a_bad_origin_is_refused_at_start_naming_it(self):
        data = tempfile.mkdtemp(prefix="switchboard-bridge-")
        try:
            r = subprocess.run([BINARY, "run", "--data", data, "--listen", "tcp://127.0.0.1:*",
                                "--bridge-origin", "chat.example.com"], capture_output=True, text=True, timeout=60)
        finally:
            shutil.rmtree(data, ignore_errors=True)
        self.assertNotEqual(r.returncode, 0)
        self.assertNotIn("switchboard ready", r.stdout)
        self.assertIn("chat.example.com", r.stderr)


class SlowConsumer(unittest.TestCase):
    def test_a_client_that_falls_behind_is_closed_and_resumes_without_gap(self):
        node = Node("--bridge-max-queue", "16")
        try:
            async def go():
                room = "slow"
                ann = await Conn.open(node.url, "ann")
                await ann.call("create_room", room=room)
                # max_queue=1: the client library stops reading the socket at once.
                slow = await Conn.open(node.url, "sloth", max_queue=1)
                await slow.call("subscribe", room=room, after=0)
                total = 3000
                # A window below the queue bound: ann reads her acks in time and is no slow consumer.
                await publish_many(ann, room, total, body=lambda i: "%06d " % i + "x" * 8192, window=8)
                code, reason = await slow.closed(timeout=60)
                self.assertEqual(code, 4008, reason)
                got = [m["seq"] for m in slow.of_room(room)]
                self.assertLess(len(got), total, "it was closed, so it cannot have everything")
                self.assertEqual(got, list(range(1, len(got) + 1)), "what did arrive is in order, no gap")
                # It reconnects and resumes from its last seq: the rest, once.
                again = await Conn.open(node.url, "sloth")
                await again.call("subscribe", room=room, after=len(got))
                rest = await again.messages(room, total - len(got), timeout=60)
                self.assertEqual([m["seq"] for m in rest], list(range(len(got) + 1, total + 1)))
                # Everyone else was served throughout.
                self.assertEqual((await ann.call("last_seq", room=room))["seq"], total)
            run(go())
        finally:
            self.assertEqual(node.stop(), 0)


class GapRepair(unittest.TestCase):
    def test_messages_the_pub_drops_are_repaired_from_history(self):
        # A publish queue of one message between chat and the bridge: a burst overflows
        # it, and the bridge must fill every gap (and the tail) from history.
        data = tempfile.mkdtemp(prefix="switchboard-bridge-topology-")
        topology = os.path.join(data, "topology.toml")
        with open(topology, "w") as f:
            f.write('[nodes.solo]\nclient = "tcp://127.0.0.1:*"\ndata = "%s/store"\ndurability = "nosync"\n'
                    'bridge = "127.0.0.1:*"\n[[shards]]\nname = "s"\nowner = "solo"\n[limits]\npub_sndhwm = 1\n'
                    'publish_per_s = 0\nrequests_per_s = 0\n'
                    % data)
        node = Node(args=["--config", topology, "--node", "solo"])
        try:
            async def go():
                ann = await Conn.open(node.url, "ann")
                await ann.call("create_room", room="burst")
                readers = [await Conn.open(node.url, u) for u in ("bob", "carol")]
                for r in readers:
                    await r.call("subscribe", room="burst", after=0)
                total = 3000
                await publish_many(ann, "burst", total)
                for r in readers:
                    self.assertEqual([m["seq"] for m in await r.messages("burst", total, timeout=60)],
                                     list(range(1, total + 1)))
                    await r.call("ping")
                    self.assertEqual(len(r.of_room("burst")), total)
            run(go())
        finally:
            self.assertEqual(node.stop(), 0)
            shutil.rmtree(data, ignore_errors=True)
        fetches = int(re.search(r"(\d+) history fetches", node.log).group(1))
        print("gap repair: %d history fetches" % fetches, file=sys.stderr)
        self.assertGreater(fetches, 0, "no message was dropped: the test did not test repair")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class TwoNodes(unittest.TestCase):
    def test_a_room_owned_by_the_other_node_is_served_in_order_through_either_bridge(self):
        data = tempfile.mkdtemp(prefix="switchboard-bridge-cluster-")
        topology = os.path.join(data, "two-nodes.toml")
        used = set()

        def port():  # a free port not given already (two picks may find the same one)
            while True:
                p = free_port()
                if p not in used:
                    used.add(p)
                    return p

        with open(topology, "w") as f:
            f.write("[cluster]\nheartbeat_ms = 200\nmisses = 5\nrequest_timeout_ms = 5000\n")
            f.write("[limits]\npublish_per_s = 0\nrequests_per_s = 0\n")
            for name in ("a", "b"):
                f.write("[nodes.%s]\n" % name)
                # Every endpoint given: a default (client port + N) could be a port in use.
                for key in ("client", "publish", "presence", "presence_pub", "peer", "presence_peer"):
                    f.write('%s = "tcp://127.0.0.1:%d"\n' % (key, port()))
                f.write('data = "%s/%s"\ndurability = "nosync"\nbridge = "127.0.0.1:*"\n' % (data, name))
            f.write('[[shards]]\nname = "s1"\nowner = "a"\n[[shards]]\nname = "s2"\nowner = "b"\n')
        # A room that node b owns.
        room = None
        for i in range(100):
            where = subprocess.run([BINARY, "where", "--room", "r%d" % i, "--config", topology], capture_output=True,
                                   text=True, timeout=WAIT)
            if "node b " in where.stdout:
                room = "r%d" % i
                break
        self.assertIsNotNone(room, "switchboard where: %s %s" % (where.stdout, where.stderr))
        nodes = {}
        try:
            nodes = {n: Node(args=["--config", topology, "--node", n]) for n in ("a", "b")}

            async def go():
                # Through node b's bridge: the owner. Read through node a's: forwarded and relayed.
                ann = await Conn.open(nodes["b"].url, "ann")
                reader = await Conn.open(nodes["a"].url, "bob")
                deadline = time.monotonic() + WAIT
                while (await reader.call("create_room", room=room))["op"] != "create_room":  # a's link to b comes up
                    self.assertLess(time.monotonic(), deadline, "node a never reached node b")
                self.assertEqual((await ann.call("join", room=room))["op"], "join")
                await reader.call("subscribe", room=room, after=0)
                await publish_many(ann, room, 300)
                await publish_many(reader, room, 100, body=lambda i: "from a %d" % i)
                got = await reader.messages(room, 400, timeout=60)
                self.assertEqual([m["seq"] for m in got], list(range(1, 401)))
                self.assertEqual(got[-1]["body"], "from a 99")
                # ann (whose own messages end at 300) reads to 400 on node b; her device on
                # node a is told through a's relay of b's events, and the one on b directly.
                other = await Conn.open(nodes["a"].url, "ann", binary=True)
                deadline = time.monotonic() + WAIT
                seq = 300
                while True:  # until a's subscription to ann's read events has reached b
                    seq += 1
                    mark = await ann.call("mark_read", room=room, seq=seq)
                    if mark["op"] != "mark_read":
                        self.fail("mark_read: %r" % mark)
                    try:
                        await other.pushed_op("read", timeout=0.5)
                        break
                    except asyncio.TimeoutError:
                        self.assertLess(time.monotonic(), deadline, "ann's device on a is never told")
                self.assertEqual((await ann.call("mark_read", room=room, seq=400))["seq"], 400)
                for name, device in (("ann on a", other), ("ann on b", ann)):
                    # The marks made while waiting may still be on their way: each comes
                    # once, in order, before 400.
                    seen = []
                    while not seen or seen[-1] < 400:
                        try:
                            pushed = await device.pushed_op("read")
                        except asyncio.TimeoutError:
                            self.fail("%s was not told of the read marker (had %r)" % (name, seen))
                        self.assertEqual(pushed["room"], room)
                        seen.append(pushed["seq"])
                    self.assertEqual(seen, sorted(set(seen)), name)
                    self.assertEqual(seen[-1], 400, name)
            run(go())
        finally:
            for n in nodes.values():
                self.assertEqual(n.stop(), 0)
            shutil.rmtree(data, ignore_errors=True)


class Tokens(unittest.TestCase):
    """With --token-key, a connection is the user its signed token names, and nothing else."""

    def test_only_a_valid_token_authenticates_and_it_decides_the_user(self):
        keys = tempfile.mkdtemp(prefix="switchboard-keys-")
        try:
            def cli(*args):
                done = subprocess.run([BINARY, *args], capture_output=True, text=True, timeout=60)
                self.assertEqual(done.returncode, 0, done.stderr)
                return done.stdout.strip()
            key, other = os.path.join(keys, "tokens.key"), os.path.join(keys, "other.key")
            cli("keygen", "--for", "tokens", "--out", key)
            cli("keygen", "--for", "tokens", "--out", other)
            ann = cli("token", "--user", "ann", "--ttl", "1h", "--key", key)
            private = "private-%d" % time.monotonic_ns()
            bob = cli("token", "--user", "bob", "--ttl", "1h", "--key", key, "--room", private)
            cat = cli("token", "--user", "cat", "--ttl", "1h", "--key", key)
            forged = cli("token", "--user", "ann", "--ttl", "1h", "--key", other)
            node = Node("--token-key", key + ".pub")
            try:
                async def go():
                    c = await Conn.open(node.url)
                    for fields, why in ((dict(user="ann"), "a name alone"), (dict(token=forged), "another key"),
                                        (dict(token=ann[:-4]), "a truncated token"), (dict(token=7), "not a string")):
                        r = await c.call("auth", **fields)
                        self.assertEqual((r["op"], r["code"]), ("error", "unauthenticated"), why)
                    r = await c.call("publish", room="r", cmid="x", body="y")
                    self.assertEqual(r["code"], "unauthenticated", "still not authenticated")
                    r = await c.call("auth", token=ann, user="mallory")
                    self.assertEqual((r["op"], r["user"]), ("auth", "ann"), "the token's user, not the frame's")
                    room = "tokens-%d" % time.monotonic_ns()
                    self.assertTrue((await c.call("create_room", room=room))["created"])
                    self.assertEqual((await c.call("publish", room=room, cmid="t1", body="hi"))["op"], "publish")
                    page = await c.call("history", room=room)
                    self.assertEqual([m["user"] for m in page["messages"]], ["ann"])
                    # A room grant in the token lets bob join a private room; cat has none.
                    self.assertTrue((await c.call("create_room", room=private, private=True))["created"])
                    b, k = await Conn.open(node.url), await Conn.open(node.url)
                    await b.call("auth", token=bob)
                    await k.call("auth", token=cat)
                    self.assertEqual((await k.call("join", room=private))["code"], "no_such_room")
                    self.assertTrue((await b.call("join", room=private))["joined"])
                    self.assertEqual((await b.call("publish", room=private, cmid="b1", body="in"))["seq"], 1)
                    await b.close()
                    await k.close()
                    await c.close()
                run(go())
            finally:
                self.assertEqual(node.stop(), 0)

            plain = Node()  # no token key: a token cannot be checked, so it is refused
            try:
                async def refused():
                    c = await Conn.open(plain.url)
                    r = await c.call("auth", token=ann)
                    self.assertEqual((r["op"], r["code"]), ("error", "bad_field"))
                    await c.close()
                run(refused())
            finally:
                self.assertEqual(plain.stop(), 0)
        finally:
            shutil.rmtree(keys, ignore_errors=True)

    def test_a_backends_own_ed25519_key_signs_tokens_the_bridge_accepts(self):
        """docs/SECURITY.md: a backend that mints tokens with its own Ed25519 key (a PEM
        file, as JWT libraries use) makes the --token-key file from it with openssl."""
        keys = tempfile.mkdtemp(prefix="switchboard-keys-")
        try:
            pem, pub = os.path.join(keys, "backend.pem"), os.path.join(keys, "backend.pub")
            subprocess.run(["openssl", "genpkey", "-algorithm", "ed25519", "-out", pem], check=True,
                           capture_output=True, timeout=60)
            # The documented command: the last 32 bytes of the DER public key, in base64.
            subprocess.run(["sh", "-c", "openssl pkey -in %s -pubout -outform DER | tail -c 32 | base64 > %s"
                            % (pem, pub)], check=True, timeout=60)

            def b64url(data):
                return base64.urlsafe_b64encode(data).rstrip(b"=").decode()
            signing_input = (b64url(json.dumps({"alg": "EdDSA", "typ": "JWT"}).encode()) + "." +
                             b64url(json.dumps({"sub": "dora", "exp": int(time.time()) + 600}).encode()))
            unsigned = os.path.join(keys, "unsigned")
            with open(unsigned, "w") as f:
                f.write(signing_input)
            signature = subprocess.run(["openssl", "pkeyutl", "-sign", "-inkey", pem, "-rawin", "-in", unsigned],
                                       capture_output=True, check=True, timeout=60).stdout
            token = signing_input + "." + b64url(signature)
            node = Node("--token-key", pub)
            try:
                async def go():
                    c = await Conn.open(node.url)
                    r = await c.call("auth", token=token)
                    self.assertEqual((r["op"], r["user"]), ("auth", "dora"))
                    tampered = token[:-6] + ("AAAAAA" if not token.endswith("AAAAAA") else "BBBBBB")
                    d = await Conn.open(node.url)
                    self.assertEqual((await d.call("auth", token=tampered))["code"], "unauthenticated")
                    await c.close()
                    await d.close()
                run(go())
            finally:
                self.assertEqual(node.stop(), 0)
        finally:
            shutil.rmtree(keys, ignore_errors=True)

    def test_a_removal_wins_over_a_token_grant_until_an_owner_adds_the_user_back(self):
        keys = tempfile.mkdtemp(prefix="switchboard-keys-")
        data = tempfile.mkdtemp(prefix="switchboard-bridge-")
        try:
            def cli(*args):
                done = subprocess.run([BINARY, *args], capture_output=True, text=True, timeout=60)
                self.assertEqual(done.returncode, 0, done.stderr)
                return done.stdout.strip()
            key = os.path.join(keys, "tokens.key")
            cli("keygen", "--for", "tokens", "--out", key)
            room = "granted-%d" % time.monotonic_ns()
            ann = cli("token", "--user", "ann", "--ttl", "1h", "--key", key)
            bob = cli("token", "--user", "bob", "--ttl", "1h", "--key", key, "--room", room)
            args = ["--data", data, "--listen", "tcp://127.0.0.1:*", "--durability", "nosync", "--bridge",
                    "127.0.0.1:*", "--token-key", key + ".pub"]

            async def connect(node, token):
                c = await Conn.open(node.url)
                self.assertEqual((await c.call("auth", token=token))["op"], "auth")
                return c

            node = Node(args=args)
            try:
                async def go():
                    a, b = await connect(node, ann), await connect(node, bob)
                    self.assertTrue((await a.call("create_room", room=room, private=True))["created"])
                    self.assertTrue((await b.call("join", room=room))["joined"], "the grant invites bob")
                    self.assertTrue((await a.call("remove_member", room=room, user="bob"))["removed"])
                    r = await b.call("join", room=room)
                    self.assertEqual((r["op"], r["code"]), ("error", "no_such_room"), "removed: the grant is not enough")
                    # Leaving by oneself is no removal: the grant still invites.
                    self.assertTrue((await a.call("add_member", room=room, user="bob"))["added"])
                    self.assertTrue((await b.call("leave", room=room))["left"])
                    self.assertTrue((await b.call("join", room=room))["joined"])
                    self.assertTrue((await a.call("remove_member", room=room, user="bob"))["removed"])
                    await a.close()
                    await b.close()
                run(go())
            finally:
                self.assertEqual(node.stop(), 0)
            node = Node(args=args)  # the removal is stored: a restart does not forget it
            try:
                async def after_restart():
                    a, b = await connect(node, ann), await connect(node, bob)
                    r = await b.call("join", room=room)
                    self.assertEqual((r["op"], r["code"]), ("error", "no_such_room"))
                    self.assertTrue((await a.call("add_member", room=room, user="bob", role="reader"))["added"])
                    self.assertEqual((await b.call("history", room=room))["op"], "history", "added back by an owner")
                    self.assertTrue((await b.call("leave", room=room))["left"])
                    self.assertTrue((await b.call("join", room=room))["joined"], "and the grant works again")
                    # A ban wins over the grant too, and is stored as well.
                    self.assertTrue((await a.call("ban", room=room, user="bob"))["banned"])
                    r = await b.call("join", room=room)
                    self.assertEqual((r["op"], r["code"]), ("error", "forbidden"), "banned")
                    self.assertIn("banned", r["message"])
                    await a.close()
                    await b.close()
                run(after_restart())
            finally:
                self.assertEqual(node.stop(), 0)
            node = Node(args=args)
            try:
                async def banned_after_restart():
                    a, b = await connect(node, ann), await connect(node, bob)
                    r = await b.call("join", room=room)
                    self.assertEqual((r["op"], r["code"]), ("error", "forbidden"), "the ban outlives a restart")
                    self.assertTrue((await a.call("unban", room=room, user="bob"))["unbanned"])
                    r = await b.call("join", room=room)
                    self.assertEqual((r["op"], r["code"]), ("error", "no_such_room"), "unbanned: as after a removal")
                    self.assertTrue((await a.call("add_member", room=room, user="bob"))["added"])
                    await a.close()
                    await b.close()
                run(banned_after_restart())
            finally:
                self.assertEqual(node.stop(), 0)
        finally:
            shutil.rmtree(keys, ignore_errors=True)
            shutil.rmtree(data, ignore_errors=True)

def make_certificate(directory, name, host="127.0.0.1"):
    """A self-signed certificate for `host` (as an IP subjectAltName) and its key, made
    with Debian's openssl: (cert_path, key_path)."""
    cert, key = os.path.join(directory, name + ".crt"), os.path.join(directory, name + ".key")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                    "-nodes", "-days", "2", "-subj", "/CN=" + host, "-addext", "subjectAltName=IP:" + host,
                    "-keyout", key, "-out", cert], check=True, capture_output=True, timeout=60)
    return cert, key


class Tls(unittest.TestCase):
    """With --bridge-cert and --bridge-key, the bridge serves wss:// and https:// only."""

    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix="switchboard-tls-")
        cls.cert, cls.key = make_certificate(cls.dir, "bridge")
        cls.other_cert, cls.other_key = make_certificate(cls.dir, "other")

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.dir, ignore_errors=True)

    def test_wss_carries_the_protocol_and_https_the_page_and_plain_gets_nothing(self):
        node = Node("--bridge-cert", self.cert, "--bridge-key", self.key)
        try:
            self.assertTrue(node.url.startswith("wss://127.0.0.1:"), node.url)
            trust = ssl.create_default_context(cafile=self.cert)  # checks the name too: IP 127.0.0.1

            async def go():
                room = "tls-%d" % time.monotonic_ns()
                ann = await Conn.open(node.url, "ann", ssl=trust)
                bob = await Conn.open(node.url, "bob", binary=True, ssl=trust)
                self.assertTrue((await ann.call("create_room", room=room))["created"])
                self.assertEqual((await bob.call("join", room=room))["op"], "join")
                self.assertEqual((await bob.call("subscribe", room=room))["op"], "subscribe")
                await publish_many(ann, room, 50)
                self.assertEqual([m["seq"] for m in await bob.messages(room, 50)], list(range(1, 51)))
                self.assertEqual((await ann.call("history", room=room, limit=5))["messages"][-1]["body"], "message 49")
                # A client that does not trust this certificate gets no connection.
                with self.assertRaises(ssl.SSLCertVerificationError):
                    await websockets.connect(node.url, ssl=ssl.create_default_context(cafile=self.other_cert))
                await ann.close()
                await bob.close()
            run(go())

            with urllib.request.urlopen(node.http, context=trust, timeout=WAIT) as r:
                self.assertEqual(r.status, 200)
                self.assertIn(b"Switchboard", r.read())

            # Plain HTTP (and so plain ws://) on the TLS port gets no HTTP answer, only a hang-up.
            host, port = re.match(r"wss://([^:/]+):(\d+)/", node.url).groups()
            raw = socket.create_connection((host, int(port)), timeout=WAIT)
            raw.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            received = b""
            while chunk := raw.recv(4096):
                received += chunk
            raw.close()
            self.assertNotIn(b"HTTP/1.1", received)

            # And the bridge keeps serving after all that.
            async def still():
                c = await Conn.open(node.url, "carl", ssl=trust)
                self.assertEqual((await c.call("ping"))["op"], "ping")
                await c.close()
            run(still())
        finally:
            self.assertEqual(node.stop(), 0)

    def test_unusable_tls_files_stop_the_start_with_the_file_named(self):
        data = tempfile.mkdtemp(prefix="switchboard-tls-data-")
        try:
            missing = os.path.join(self.dir, "missing.crt")
            for files, named in (((missing, self.key), missing),
                                 ((self.cert, self.other_key), self.other_key),  # not this certificate's key
                                 ((self.key, self.key), self.key)):             # a key is no certificate
                r = subprocess.run([BINARY, "run", "--data", data, "--listen", "tcp://127.0.0.1:*",
                                    "--bridge-cert", files[0], "--bridge-key", files[1]],
                                   capture_output=True, text=True, timeout=60)
                self.assertEqual(r.returncode, 1, r.stderr)
                self.assertIn(named, r.stderr)
                self.assertNotIn("switchboard ready", r.stdout)
            r = subprocess.run([BINARY, "run", "--data", data, "--bridge-cert", self.cert],
                               capture_output=True, text=True, timeout=60)
            self.assertEqual(r.returncode, 2, r.stderr)
            self.assertIn("--bridge-key", r.stderr)
        finally:
            shutil.rmtree(data, ignore_errors=True)


class RateLimits(unittest.TestCase):
    """Token buckets per user (publish, typing) and per connection (every request)."""

    def test_a_flooding_user_is_limited_and_nobody_else_is(self):
        node = Node("--limit", "publish_per_s=5", "--limit", "publish_burst=10", "--limit", "typing_per_s=1",
                    "--limit", "typing_burst=2")
        try:
            async def go():
                room = "rates-%d" % time.monotonic_ns()
                ann = await Conn.open(node.url, "ann")
                ann2 = await Conn.open(node.url, "ann")  # the same user on a second connection
                bob = await Conn.open(node.url, "bob")
                self.assertTrue((await ann.call("create_room", room=room))["created"])
                self.assertEqual((await bob.call("join", room=room))["op"], "join")
                # ann floods from two connections while bob publishes at the same time.
                flood = [await c.send("publish", room=room, cmid="a%d" % i, body="flood %d" % i)
                         for i in range(30) for c in ([ann] if i % 2 else [ann2])]
                bob_ids = [await bob.send("publish", room=room, cmid="b%d" % i, body="bob %d" % i) for i in range(10)]
                replies = [await (ann if i % 2 else ann2).reply(rid) for i, rid in enumerate(flood)]
                accepted = [r for r in replies if r["op"] == "publish"]
                limited = [r for r in replies if r["op"] == "error"]
                self.assertGreaterEqual(len(accepted), 10, "the burst goes through")
                self.assertLess(len(accepted), 30, "then the rate holds, over both of ann's connections")
                for r in limited:
                    self.assertEqual(r["code"], "rate_limited")
                    self.assertTrue(0 < r["retry_after_ms"] <= 200, r)  # one token at 5/s
                for rid in bob_ids:
                    self.assertEqual((await bob.reply(rid))["op"], "publish", "bob is not limited by ann's flood")
                # Operators see it: the node's metrics count every refusal.
                with urllib.request.urlopen(node.metrics, timeout=WAIT) as r:
                    scrape = r.read().decode()
                counted = re.search(r'^switchboard_bridge_rate_limited_total\{[^}]*\} (\S+)$', scrape, re.M)
                self.assertIsNotNone(counted, scrape[:2000])
                self.assertEqual(float(counted.group(1)), len(limited))
                # Only what was accepted is stored.
                page = await bob.call("history", room=room, limit=100)
                self.assertEqual(len([m for m in page["messages"] if m["user"] == "ann"]), len(accepted))
                # After the wait it was told, ann may publish again.
                await asyncio.sleep(max(r["retry_after_ms"] for r in limited) / 1000)
                self.assertEqual((await ann.call("publish", room=room, cmid="later", body="later"))["op"], "publish")

                # Typing has a bucket of its own, per user: two notices (from two sessions,
                # as presence allows one a second per session), then the user is limited.
                self.assertEqual((await ann.call("typing", room=room))["op"], "typing")
                self.assertEqual((await ann2.call("typing", room=room))["op"], "typing")
                third = await ann.call("typing", room=room)
                self.assertEqual(third["code"], "rate_limited", third)
                self.assertTrue(0 < third["retry_after_ms"] <= 1000, third)
                self.assertEqual((await bob.call("typing", room=room))["op"], "typing")
                for c in (ann, ann2, bob):
                    await c.close()
            run(go())
        finally:
            self.assertEqual(node.stop(), 0)
        self.assertIn("requests rate limited", node.log)

    def test_a_flooding_connection_is_limited_and_the_users_other_connection_is_not(self):
        node = Node("--limit", "requests_per_s=10", "--limit", "request_burst=20")
        try:
            async def go():
                noisy = await Conn.open(node.url, "ann")
                quiet = await Conn.open(node.url, "ann")
                ids = [await noisy.send("ping") for _ in range(60)]
                replies = [await noisy.reply(rid) for rid in ids]
                self.assertIn("rate_limited", [r.get("code") for r in replies])
                self.assertLess(len([r for r in replies if r["op"] == "ping"]), 60)
                self.assertEqual((await quiet.call("ping"))["op"], "ping")
                await noisy.close()
                await quiet.close()
            run(go())
        finally:
            self.assertEqual(node.stop(), 0)

    def test_bad_limits_are_refused_naming_them(self):
        for bad, says in (("publish_per_s=-1", "KEY=INTEGER"), ("publish_per_s", "KEY=INTEGER"),
                          ("no_such_limit=3", "unknown key 'no_such_limit'"),
                          ("publish_per_s=2000000", "between 0 and 1000000")):
            r = subprocess.run([BINARY, "run", "--data", "unused", "--limit", bad], capture_output=True, text=True,
                               timeout=WAIT)
            self.assertNotEqual(r.returncode, 0, bad)
            self.assertIn(says, r.stderr, bad)


class Lifecycle(unittest.TestCase):
    def test_the_bridge_keeps_sessions_alive_and_stopping_the_node_says_going_away(self):
        node = Node("--heartbeat-ms", "200", "--session-ttl-ms", "600")
        try:
            async def go():
                ann = await Conn.open(node.url, "ann")
                await ann.call("create_room", room="den")
                await ann.call("subscribe", room="den")
                bob = await Conn.open(node.url, "bob")
                await bob.call("join", room="den")
                # The bridge heartbeats bob's session at the node's interval: he stays
                # online across three TTLs.
                with self.assertRaises(asyncio.TimeoutError):
                    await ann.event("offline", "bob", timeout=1.8)
                self.assertEqual([u["user"] for u in (await ann.call("who", room="den"))["users"]], ["ann", "bob"])
                node.proc.terminate()
                for c in (ann, bob):
                    self.assertEqual((await c.closed())[0], 1001)
            run(go())
        finally:
            self.assertEqual(node.stop(), 0)


class Keepalive(unittest.TestCase):
    def test_a_silent_peer_is_closed_and_a_live_one_is_kept(self):
        # Long enough that a loaded box answers a ping within half of it.
        node = Node("--bridge-idle-ms", "1500")
        try:
            host, port = re.match(r"ws://([^:/]+):(\d+)/", node.url).groups()
            raw = socket.create_connection((host, int(port)), timeout=WAIT)
            raw.sendall(("GET / HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                         "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
                         % host).encode())
            start = time.monotonic()
            received = b""
            while True:  # it never answers the bridge's pings; the bridge hangs up
                chunk = raw.recv(4096)
                if not chunk:
                    break
                received += chunk
            took = time.monotonic() - start
            self.assertIn(b"101 Switching Protocols", received)
            self.assertIn(b"\x89", received, "a ping was sent")
            self.assertLess(took, 10)

            async def go():
                # A client that answers pings stays connected past several idle periods.
                c = await Conn.open(node.url, "ann")
                for _ in range(4):
                    with self.assertRaises(asyncio.TimeoutError):
                        await c.read(timeout=1.0)
                self.assertEqual((await c.call("ping"))["op"], "ping")
            run(go())
        finally:
            self.assertEqual(node.stop(), 0)


if __name__ == "__main__":
    BINARY, WEB_DIR = sys.argv[1], sys.argv[2]
    unittest.main(argv=[sys.argv[0]] + sys.argv[3:], verbosity=2)
