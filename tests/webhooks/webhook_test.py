#!/usr/bin/python3
"""Webhooks (docs/WEBHOOKS.md) of real `switchboard run` processes, delivered to a real
HTTP receiver (python3's http.server) that checks every request's signature the way
docs/WEBHOOKS.md tells a receiver to, and that fails, stalls, goes away and comes back
on command: every stored message arrives, in order per room, with a stable id; a
request that fails or gets no answer in time is retried; a node killed with -9 between
storing and delivering delivers after its restart from the stored cursor; a receiver
that never answers shows in the metrics and does not stop the node.

Usage: webhook_test.py SWITCHBOARD_BINARY [unittest args]

Every wait is on an event (a ready line, a request reaching the receiver, a metric)
with a deadline; nothing sleeps in place of synchronisation.
"""
import hashlib
import hmac
import http.client
import http.server
import json
import os
import queue
import re
import secrets
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import unittest

BINARY = None
WAIT = 30.0  # seconds any one expected event may take on a loaded 2-core box
API_KEY = "full-" + secrets.token_hex(20)
SECRET = "whsec-" + secrets.token_hex(20)


_given_ports = set()


def free_port():
    """A free loopback port not given before in this run (two picks may find the same)."""
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port not in _given_ports:
            _given_ports.add(port)
            return port


# ---- the receiver -----------------------------------------------------------------------

class Receiver:
    """An HTTP server on `port` that takes POSTs as docs/WEBHOOKS.md describes them.
    It checks each request's timestamp and signature (a bad one is kept in `bad` and
    answered 401), and answers as `mode` says: "ok" (200, the events are taken),
    "fail" (500), or "stall" (holds the request until `release` is set or 10 s pass,
    and does not take it: the node has given up on it by then). `fail_next` and
    `stall_next` make only the next N requests fail or stall. `taken` lists the events
    taken, in order; `attempts` counts requests per event id."""

    def __init__(self, port=0, tls=None):
        self.kwargs = {"tls": tls}
        self.held = None
        self.cond = threading.Condition()
        self.taken, self.bad, self.bodies = [], [], []
        self.attempts = {}
        self.mode, self.fail_next, self.stall_next = "ok", 0, 0
        self.release = threading.Event()
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                stamp = self.headers.get("X-Switchboard-Timestamp", "")
                sig = self.headers.get("X-Switchboard-Signature", "")
                expected = "v1=" + hmac.new(SECRET.encode(), stamp.encode() + b"." + body, hashlib.sha256).hexdigest()
                ok_time = stamp.isdigit() and abs(time.time() - int(stamp)) < 300
                parsed = json.loads(body)
                events = parsed if isinstance(parsed, list) else [parsed]
                with receiver.cond:
                    for e in events:
                        receiver.attempts[e["id"]] = receiver.attempts.get(e["id"], 0) + 1
                    if not hmac.compare_digest(sig, expected) or not ok_time:
                        receiver.bad.append((stamp, sig, body))
                        receiver.cond.notify_all()
                        return self.answer(401)
                    if not isinstance(parsed, list) and self.headers.get("X-Switchboard-Event-Id") != parsed["id"]:
                        receiver.bad.append(("event id header", self.headers.get("X-Switchboard-Event-Id"), body))
                    mode = receiver.mode
                    if receiver.fail_next:
                        receiver.fail_next -= 1
                        mode = "fail"
                    elif receiver.stall_next:
                        receiver.stall_next -= 1
                        mode = "stall"
                    if mode == "ok":
                        receiver.taken.extend(events)
                        receiver.bodies.append(parsed)
                    receiver.cond.notify_all()
                if mode == "stall":
                    receiver.release.wait(10)  # what is under test: the node gives up first
                    self.close_connection = True
                    return
                self.answer(200 if mode == "ok" else 500)

            def answer(self, status):
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
        if tls:  # (certificate, key): https only
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(*tls)
            self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        self.server.daemon_threads = True
        # A node killed or giving up mid-request resets its connection: expected here.
        self.server.handle_error = lambda request, address: None
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def url(self):
        return "http://127.0.0.1:%d/hooks/switchboard" % self.port

    def go_down(self):
        """Closes the server but keeps its port bound, listening to nothing: a request
        finds no receiver there (connection refused) and no other process takes the port
        before come_back()."""
        self.close()
        self.held = socket.socket()
        self.held.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.held.bind(("127.0.0.1", self.port))

    def come_back(self):
        """A new receiver on the same port."""
        self.held.close()
        return Receiver(self.port, **self.kwargs)

    def wait_for(self, predicate, what):
        with self.cond:
            if not self.cond.wait_for(lambda: predicate(self), WAIT):
                raise AssertionError("the receiver did not see %s within %s s; taken: %d events, attempts: %d ids; "
                                     "the last taken: %s" % (what, WAIT, len(self.taken), len(self.attempts),
                                                             json.dumps(self.taken[-3:])[:1500]))

    def seqs(self, room):
        with self.cond:
            return [e["seq"] for e in self.taken if e["type"] == "message" and e["room"] == room]

    def close(self):
        self.release.set()
        if self.server:
            self.server.shutdown()
            self.server.server_close()
            self.server = None
        if self.held:
            self.held.close()
            self.held = None


# ---- nodes ------------------------------------------------------------------------------

class Node:
    """A `switchboard run` process of a one-node topology with webhooks; ready once it
    printed its ready line. Its data directory outlives stop() until cleanup()."""

    def __init__(self, webhooks, data=None, metrics=True, topology=None, name="a", env=None):
        self.env = env
        self.dir = tempfile.mkdtemp(prefix="switchboard-webhook-")
        self.data = data or os.path.join(self.dir, "store")
        self.name = name
        self.topology = topology or os.path.join(self.dir, "topology.toml")
        if topology is None:
            self._write_topology(webhooks, metrics)
        self.start()

    def _write_topology(self, webhooks, metrics):
        with open(self.topology, "w") as f:
            # Every port '*': the node binds a free one and its ready line says which.
            f.write('[nodes.a]\nclient = "tcp://127.0.0.1:*"\napi = "127.0.0.1:*"\ndata = "%s"\n'
                    'durability = "nosync"\n' % self.data)
            if metrics:
                f.write('metrics = "127.0.0.1:*"\n')
            f.write('\n[limits]\npublish_per_s = 0\nrequests_per_s = 0\n\n'
                    '[security]\ncurve = false\napi_keys = ["%s"]\n\n' % API_KEY)
            f.write(webhooks)

    def start(self):
        self.log_path = os.path.join(self.dir, "node.log")
        with open(self.log_path, "a") as log:
            self.proc = subprocess.Popen([BINARY, "run", "--config", self.topology, "--node", self.name],
                                         stdout=subprocess.PIPE, stderr=log, text=True,
                                         env=dict(os.environ, **(self.env or {})))
        self.lines = queue.Queue()
        threading.Thread(target=self._read, args=(self.proc, self.lines), daemon=True).start()
        deadline = time.monotonic() + WAIT
        while True:
            try:
                line = self.lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                line = None
            if line is None:
                raise RuntimeError("no ready line (exit %s); log:\n%s" % (self.proc.poll(), self.log()[-3000:]))
            if line.startswith("switchboard ready "):
                self.client = re.search(r" client=(\S+)", line).group(1)
                self.api_port = int(re.search(r" api=http://127\.0\.0\.1:(\d+)/", line).group(1))
                metrics = re.search(r" metrics=http://127\.0\.0\.1:(\d+)/", line)
                self.metrics_port = int(metrics.group(1)) if metrics else None
                break
        self.api = http.client.HTTPConnection("127.0.0.1", self.api_port, timeout=WAIT)

    @staticmethod
    def _read(proc, lines):
        for line in proc.stdout:
            lines.put(line)
        lines.put(None)

    def log(self):
        with open(self.log_path) as f:
            return f.read()

    def call(self, op, body):
        if self.api.sock is None:
            self.api = http.client.HTTPConnection("127.0.0.1", self.api_port, timeout=WAIT)
        self.api.request("POST", "/api/v1/" + op, json.dumps(body).encode(),
                         {"Authorization": "Bearer " + API_KEY, "Content-Type": "application/json"})
        response = self.api.getresponse()
        reply = json.loads(response.read())
        if response.status != 200:
            raise AssertionError("%s: HTTP %d %s" % (op, response.status, reply))
        return reply

    def publish(self, room, user, count, start=1):
        """`count` messages to `room` as `user`, in batches of up to 100; their seqs."""
        seqs = []
        i = start
        while i < start + count:
            n = min(100, start + count - i)
            items = [["%s-%d" % (room, k), "message %d of %s" % (k, room)] for k in range(i, i + n)]
            reply = self.call("publish_batch", {"room": room, "user": user, "items": items})
            seqs += [r[0] for r in reply["results"]]
            i += n
        return seqs

    def metric(self, name, webhook):
        conn = http.client.HTTPConnection("127.0.0.1", self.metrics_port, timeout=WAIT)
        try:
            conn.request("GET", "/metrics")
            text = conn.getresponse().read().decode()
        finally:
            conn.close()
        m = re.search(r'^%s\{[^}]*webhook="%s"[^}]*\} (\S+)$' % (re.escape(name), re.escape(webhook)), text, re.M)
        return float(m.group(1)) if m else None

    def wait_metric(self, name, webhook, predicate, what):
        deadline = time.monotonic() + WAIT
        value = None
        while time.monotonic() < deadline:
            value = self.metric(name, webhook)
            if value is not None and predicate(value):
                return value
            time.sleep(0.05)  # polling an HTTP endpoint; the deadline bounds it
        raise AssertionError("%s{webhook=%s} never became %s (last %s)" % (name, webhook, what, value))

    def kill9(self):
        self.proc.kill()
        self.proc.wait()
        self.proc.stdout.close()
        self.api.close()

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(WAIT)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if not self.proc.stdout.closed:
            self.proc.stdout.close()
        self.api.close()
        return self.proc.returncode

    def cleanup(self):
        shutil.rmtree(self.dir, ignore_errors=True)


def webhook(name, url, **keys):
    text = '[webhooks.%s]\nurl = "%s"\nsecret = "%s"\ntimeout_ms = 500\n' % (name, url, SECRET)
    for k, v in keys.items():
        text += "%s = %s\n" % (k, json.dumps(v))
    return text + "\n"


class WebhookTest(unittest.TestCase):
    maxDiff = None

    def setUp(self):
        self.receiver = Receiver()
        self.nodes = []

    def tearDown(self):
        for node in self.nodes:
            code = node.stop()
            if code not in (0, -9):
                print("node log:\n" + node.log()[-3000:], file=sys.stderr)
            node.cleanup()
        self.receiver.close()

    def node(self, webhooks, **kwargs):
        node = Node(webhooks, **kwargs)
        self.nodes.append(node)
        return node

    def assert_in_order_once(self, room, count):
        self.assertEqual(self.receiver.seqs(room), list(range(1, count + 1)))

    def test_every_message_arrives_signed_in_order_with_its_id(self):
        node = self.node(webhook("all", self.receiver.url()))
        for room in ("general", "random"):
            node.call("create_room", {"room": room, "user": "ann"})
        node.call("add_member", {"room": "general", "user": "bob"})
        node.call("publish", {"room": "general", "user": "ann", "cmid": "first", "body": "hi @bob",
                              "mentions": ["bob"]})
        node.publish("general", "ann", 149, start=2)
        node.publish("random", "ann", 150)
        self.receiver.wait_for(lambda r: len(r.taken) >= 300, "300 events")
        self.assert_in_order_once("general", 150)
        self.assert_in_order_once("random", 150)
        self.assertEqual(self.receiver.bad, [])
        first = self.receiver.taken[[e["room"] for e in self.receiver.taken].index("general")]
        self.assertEqual(set(first), {"id", "type", "webhook", "node", "room", "seq", "user", "ts", "body", "cmid",
                                      "mentions"})
        self.assertEqual((first["id"], first["type"], first["webhook"], first["node"], first["user"], first["body"],
                          first["cmid"], first["mentions"]),
                         ("m:general:1", "message", "all", "a", "ann", "hi @bob", "first", ["bob"]))
        history = node.call("history", {"room": "general", "limit": 1, "after": 0})["messages"][0]
        self.assertEqual(first["ts"], history["ts"], "the event's ts is the stored message's")
        self.assertEqual(max(self.receiver.attempts.values()), 1, "a receiver that takes everything gets it once")
        node.wait_metric("switchboard_webhook_delivered_total", "all", lambda v: v == 300, "300")
        node.wait_metric("switchboard_webhook_pending_events", "all", lambda v: v == 0, "0")
        self.assertEqual(node.metric("switchboard_webhook_up", "all"), 1)

    def test_filters_and_batches(self):
        node = self.node(webhook("bulk", self.receiver.url(), rooms=["bulk-*"], users=["ann", "bot"], max_batch=25))
        for room in ("bulk-1", "other"):
            node.call("create_room", {"room": room, "user": "ann"})
        node.call("add_member", {"room": "bulk-1", "user": "eve"})
        node.publish("other", "ann", 10)
        node.publish("bulk-1", "eve", 5)   # seqs 1..5: eve is not covered
        node.publish("bulk-1", "ann", 60, start=6)  # 6..65
        self.receiver.wait_for(lambda r: len(r.taken) >= 60, "60 events")
        self.assertEqual(self.receiver.seqs("bulk-1"), list(range(6, 66)))
        self.assertEqual(self.receiver.seqs("other"), [], "a room not covered sends nothing")
        self.assertTrue(all(isinstance(b, list) and 1 <= len(b) <= 25 for b in self.receiver.bodies),
                        "with max_batch > 1 each body is an array of at most max_batch events")
        self.assertEqual(self.receiver.bad, [])

    def test_a_failing_receiver_gets_the_same_event_until_it_takes_it(self):
        self.receiver.fail_next = 4
        node = self.node(webhook("flaky", self.receiver.url()))
        node.call("create_room", {"room": "r", "user": "ann"})
        node.publish("r", "ann", 10)
        self.receiver.wait_for(lambda r: len(r.taken) >= 10, "10 events")
        self.assert_in_order_once("r", 10)
        self.assertEqual(self.receiver.attempts["m:r:1"], 5, "four failures, then taken")
        self.assertEqual(node.wait_metric("switchboard_webhook_failures_total", "flaky", lambda v: v >= 4, ">= 4"), 4)
        self.assertIn("webhook flaky", node.log(), "the failure is logged")

    def test_a_receiver_that_stalls_is_given_up_on_and_retried(self):
        self.receiver.stall_next = 1
        node = self.node(webhook("slow", self.receiver.url()))
        node.call("create_room", {"room": "r", "user": "ann"})
        node.publish("r", "ann", 3)
        self.receiver.wait_for(lambda r: len(r.taken) >= 3, "3 events")
        self.assert_in_order_once("r", 3)
        self.assertEqual(self.receiver.attempts["m:r:1"], 2, "the stalled request, then its retry")
        self.assertIn("no answer within 500 ms", node.log())

    def test_a_receiver_that_is_down_does_not_stop_the_node_and_gets_everything_later(self):
        self.receiver.go_down()
        node = self.node(webhook("down", self.receiver.url()))
        node.call("create_room", {"room": "r", "user": "ann"})
        self.assertEqual(node.publish("r", "ann", 200), list(range(1, 201)), "the node keeps storing")
        self.assertEqual(len(node.call("history", {"room": "r", "limit": 50})["messages"]), 50)
        node.wait_metric("switchboard_webhook_up", "down", lambda v: v == 0, "0")
        node.wait_metric("switchboard_webhook_pending_events", "down", lambda v: v == 200, "200")
        node.wait_metric("switchboard_webhook_failing_seconds", "down", lambda v: v > 0, "> 0")
        self.receiver = self.receiver.come_back()
        self.receiver.wait_for(lambda r: len(r.taken) >= 200, "200 events once it is back")
        self.assert_in_order_once("r", 200)
        node.wait_metric("switchboard_webhook_up", "down", lambda v: v == 1, "1")

    def test_kill9_between_storing_and_delivering_loses_nothing(self):
        self.receiver.go_down()
        node = self.node(webhook("k", self.receiver.url()))
        for room in ("a", "b"):
            node.call("create_room", {"room": room, "user": "ann"})
            node.publish(room, "ann", 120)
        node.kill9()
        self.receiver = self.receiver.come_back()
        node.start()
        self.receiver.wait_for(lambda r: len(r.taken) >= 240, "240 events after the restart")
        self.assert_in_order_once("a", 120)
        self.assert_in_order_once("b", 120)
        # Again with a receiver that takes events as they come: killed mid-stream, the
        # restarted node goes on from its stored cursor; an event may come twice, with
        # its id, and none is missing.
        node.publish("a", "ann", 300, start=121)
        self.receiver.wait_for(lambda r: len(r.taken) >= 260, "some of the next events")
        node.kill9()
        node.start()
        node.publish("a", "ann", 10, start=421)
        self.receiver.wait_for(lambda r: set(range(121, 431)) <= set(r.seqs("a")), "every event of room a")
        seqs = self.receiver.seqs("a")
        self.assertEqual(sorted(set(seqs)), list(range(1, 431)))
        # In order but for one start-over: the restarted node resends from its stored
        # cursor (stored at most every 200 ms, so it may be behind what was taken).
        starts_over = [i for i in range(1, len(seqs)) if seqs[i] != seqs[i - 1] + 1]
        self.assertLessEqual(len(starts_over), 1, seqs)
        for i in starts_over:
            self.assertLessEqual(seqs[i], seqs[i - 1], "a jump ahead would be a skipped event")

    def test_membership_and_room_events_arrive_in_order_per_room_and_survive_a_kill9(self):
        node = self.node(webhook("ev", self.receiver.url(), events=["membership", "room"], rooms=["team*"]) +
                         webhook("both", self.receiver.url(), events=["message", "membership"], rooms=["team"],
                                 users=["bob"]))
        node.call("create_room", {"room": "team", "user": "ann"})
        node.call("create_room", {"room": "elsewhere", "user": "ann"})  # not covered
        node.call("add_member", {"room": "team", "user": "bob", "as": "ann"})
        node.publish("team", "ann", 2)
        node.call("join", {"room": "team", "user": "cy"})
        node.call("join", {"room": "team", "user": "cy"})  # a member already: no change, no event
        node.call("set_role", {"room": "team", "user": "bob", "role": "owner", "as": "ann"})
        node.call("set_receipts", {"room": "team", "receipts": True, "as": "ann"})
        node.call("set_retention", {"room": "team", "max_messages": 500})
        node.call("kick", {"room": "team", "user": "cy", "as": "bob"})
        node.call("ban", {"room": "team", "user": "dan", "as": "ann"})
        node.call("unban", {"room": "team", "user": "dan", "as": "ann"})
        node.call("leave", {"room": "team", "user": "bob"})
        node.call("mark_read", {"room": "team", "user": "ann", "seq": 2})  # read state: no event
        node.call("delete_room", {"room": "team", "as": "ann"})
        expected = [("room", "created", None), ("membership", "joined", "ann"), ("membership", "added", "bob"),
                    ("membership", "joined", "cy"), ("membership", "role", "bob"), ("room", "receipts", None),
                    ("room", "retention", None), ("membership", "kicked", "cy"), ("membership", "banned", "dan"),
                    ("membership", "unbanned", "dan"), ("membership", "left", "bob"), ("room", "deleted", None)]
        self.receiver.wait_for(lambda r: sum(e["webhook"] == "ev" for e in r.taken) >= len(expected),
                               "every membership and room event of room team")
        with self.receiver.cond:
            ev = [e for e in self.receiver.taken if e["webhook"] == "ev"]
        self.assertEqual([(e["type"], e["event"], e.get("user")) for e in ev], expected)
        self.assertEqual([e["n"] for e in ev], list(range(1, len(expected) + 1)))
        self.assertEqual([e["id"] for e in ev], ["e:team:%d" % n for n in range(1, len(expected) + 1)])
        self.assertTrue(all(e["room"] == "team" and e["node"] == "a" for e in ev))
        by_event = {e["event"]: e for e in ev}
        self.assertEqual(by_event["created"]["private"], False)
        self.assertNotIn("by", by_event["created"])  # a service acting for the node made it
        self.assertEqual(by_event["added"]["role"], "member")
        self.assertEqual(by_event["added"]["by"], "ann")
        self.assertEqual(by_event["added"]["after_seq"], 0)
        self.assertEqual((ev[1]["role"], ev[3]["role"]), ("owner", "member"))  # the creator's join, cy's
        self.assertEqual(ev[3]["after_seq"], 2)  # cy joined after the two messages
        self.assertEqual(by_event["role"]["role"], "owner")
        self.assertEqual(by_event["receipts"]["receipts"], True)
        self.assertEqual((by_event["retention"]["max_messages"], by_event["retention"]["legal_hold"]), (500, False))
        self.assertEqual(by_event["kicked"]["by"], "bob")
        self.assertEqual(by_event["deleted"]["by"], "ann")
        self.assertTrue(all(isinstance(e["ts"], int) and e["ts"] > 1.7e12 for e in ev))
        # "both": bob's membership events (not ann's, cy's or dan's), no room events, and
        # bob's messages (none: only ann published).
        self.receiver.wait_for(lambda r: sum(e["webhook"] == "both" for e in r.taken) >= 3, "bob's membership events")
        with self.receiver.cond:
            both = [(e["type"], e["event"]) for e in self.receiver.taken if e["webhook"] == "both"]
        self.assertEqual(both, [("membership", "added"), ("membership", "role"), ("membership", "left")])
        # The events logs are no rooms anyone sees.
        self.assertEqual(sorted(node.call("rooms", {})["rooms"]), ["elsewhere"])
        # Stored with their change: killed with the next ones undelivered, the restarted
        # node delivers them, numbered on from where the log stood.
        with self.receiver.cond:
            self.receiver.mode = "fail"
        node.call("create_room", {"room": "team", "user": "eve"})
        node.call("join", {"room": "team", "user": "fay"})
        self.receiver.wait_for(lambda r: "e:team:13" in r.attempts, "event 13 tried")
        node.kill9()
        with self.receiver.cond:
            self.receiver.mode = "ok"
            taken_before = len(self.receiver.taken)
        node.start()
        self.receiver.wait_for(lambda r: any(e["id"] == "e:team:15" for e in r.taken[taken_before:]),
                               "the events after the restart")
        with self.receiver.cond:
            after = [(e["n"], e["event"], e.get("user")) for e in self.receiver.taken[taken_before:]
                     if e["webhook"] == "ev"]
        # From the stored cursor (stored at most every 200 ms: events taken just before may
        # come again, with their ids), in order, none missing.
        self.assertEqual([n for n, _, _ in after], list(range(after[0][0], 16)))
        self.assertEqual(after[-3:], [(13, "created", None), (14, "joined", "eve"), (15, "joined", "fay")])

    def test_presence_events_tell_who_came_online_changed_status_and_went_offline(self):
        node = self.node(webhook("pres", self.receiver.url(), events=["presence"], users=["bob"]))
        node.call("create_room", {"room": "team", "user": "ann"})
        chats = {}
        for user in ("zed", "bob"):  # zed's are not asked for
            node.call("add_member", {"room": "team", "user": user})
            chats[user] = subprocess.Popen([BINARY, "chat", "--curve", "off", "--connect", node.client, "--room", "team",
                                            "--user", user], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                           stderr=subprocess.DEVNULL)
            self.addCleanup(lambda c=chats[user]: (c.kill(), c.wait(), c.stdin.close()))
        self.receiver.wait_for(lambda r: len(r.taken) >= 1, "bob coming online")
        chats["bob"].stdin.write(b"/status away at lunch\n")
        chats["bob"].stdin.flush()
        self.receiver.wait_for(lambda r: len(r.taken) >= 2, "bob's status")
        chats["bob"].stdin.close()  # the terminal chat ends its session as it leaves
        self.receiver.wait_for(lambda r: len(r.taken) >= 3, "bob going offline")
        with self.receiver.cond:
            taken = list(self.receiver.taken)
        self.assertEqual([(e["type"], e["event"], e["user"], e["status"], e["text"]) for e in taken],
                         [("presence", "online", "bob", "online", ""), ("presence", "status", "bob", "away", "at lunch"),
                          ("presence", "offline", "bob", "away", "at lunch")])  # as bob was last shown
        self.assertEqual(len({e["id"] for e in taken}), 3)
        self.assertTrue(all(e["id"].startswith("p:a:") and e["webhook"] == "pres" and e["node"] == "a" and
                            e["ts"] > 1.7e12 for e in taken), taken)
        self.assertEqual(self.receiver.bad, [])
        node.wait_metric("switchboard_webhook_delivered_total", "pres", lambda v: v == 3, "3")

    def test_the_example_receiver_checks_and_prints_each_event(self):
        example = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "examples", "webhook_receiver.py")
        receiver = subprocess.Popen([sys.executable, example, "--port", "0", "--secret", SECRET],
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            said = receiver.stderr.readline()
            self.assertIn("receiving on", said)
            port = int(re.search(r":(\d+)/", said).group(1))
            lines = queue.Queue()
            threading.Thread(target=Node._read, args=(receiver, lines), daemon=True).start()
            node = self.node(webhook("printer", "http://127.0.0.1:%d/events" % port) +
                             webhook("push", "http://127.0.0.1:%d/push" % port, events=["notification"], window_ms=200) +
                             webhook("members", "http://127.0.0.1:%d/members" % port, events=["membership", "room"],
                                     rooms=["other"]))
            node.call("create_room", {"room": "general", "user": "ops"})
            node.call("add_member", {"room": "general", "user": "cy"})
            node.call("publish", {"room": "general", "user": "ops", "cmid": "d0", "body": "deploy started"})
            printed = [lines.get(timeout=WAIT) for _ in range(2)]
            self.assertEqual(sorted(printed), ["general #1 ops: deploy started\n",
                                               "notify cy: 1 new in general; last from ops: deploy started\n"])
            node.call("publish", {"room": "general", "user": "ops", "cmid": "d1", "body": "@cy done",
                                  "mentions": ["cy"]})
            printed = [lines.get(timeout=WAIT) for _ in range(2)]
            self.assertEqual(sorted(printed), ["general #2 ops: @cy done\n",
                                               "notify cy: 1 new in general (mentioned); last from ops: @cy done\n"])
            node.call("create_room", {"room": "other", "user": "ops"})
            node.call("add_member", {"room": "other", "user": "cy", "as": "ops"})
            printed = [lines.get(timeout=WAIT) for _ in range(3)]
            self.assertEqual(printed, ["other: room created\n", "other: ops joined\n", "other: cy added by ops\n"])
        finally:
            receiver.kill()
            receiver.wait()

    def test_after_a_failover_the_new_primary_goes_on_from_the_stored_cursor(self):
        # Three nodes, one shard owned by a with replicas b and c (docs/REPLICATION.md):
        # a delivers while it is the primary; a is killed with events it stored (and its
        # replicas have) not delivered; the new primary delivers them from the cursor.
        d = tempfile.mkdtemp(prefix="switchboard-webhook-cluster-")
        self.addCleanup(shutil.rmtree, d, True)
        path = os.path.join(d, "topology.toml")
        for attempt in range(3):  # a multi-node file names fixed ports: one taken meanwhile is tried again
            with open(path, "w") as f:
                f.write("[cluster]\nheartbeat_ms = 200\nmisses = 3\n\n")
                for n in "abc":
                    f.write("[nodes.%s]\n" % n)
                    for key in ("client", "publish", "presence", "presence_pub", "peer", "presence_peer"):
                        f.write('%s = "tcp://127.0.0.1:%d"\n' % (key, free_port()))
                    f.write('api = "127.0.0.1:*"\ndata = "%s"\ndurability = "nosync"\n\n' % os.path.join(d, n))
                f.write('[[shards]]\nname = "s1"\nowner = "a"\nreplicas = ["b", "c"]\nack = "replicated"\n\n'
                        '[limits]\npublish_per_s = 0\nrequests_per_s = 0\n\n'
                        '[security]\ncurve = false\napi_keys = ["%s"]\n\n' % API_KEY)
                f.write(webhook("fo", self.receiver.url(), events=["message", "membership", "room", "presence"]))
                f.write(webhook("pushfo", self.receiver.url(), events=["notification"], window_ms=100))
            nodes = {}
            try:
                for n in "abc":
                    nodes[n] = self.node("", topology=path, name=n)
                break
            except RuntimeError as e:
                for node in nodes.values():
                    node.stop()
                    self.nodes.remove(node)
                for n in "abc":
                    shutil.rmtree(os.path.join(d, n), ignore_errors=True)
                if "already in use" not in str(e) or attempt == 2:
                    raise
        a, b = nodes["a"], nodes["b"]
        # A new shard starts once a majority of its members have reached each other
        # (docs/REPLICATION.md): until then a write is answered unavailable.
        deadline = time.monotonic() + WAIT
        while True:
            try:
                a.call("create_room", {"room": "r", "user": "ann"})
                break
            except AssertionError as e:
                if "unavailable" not in str(e) or time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        a.call("add_member", {"room": "r", "user": "cy"})  # offline throughout: notified of every message
        a.publish("r", "ann", 100)
        # pat is online through a: a tells of it; once a is gone, one node (b, the first
        # by name of those up) tells that pat went offline.
        a.call("create_room", {"room": "lobby", "user": "pat"})
        pat = subprocess.Popen([BINARY, "chat", "--curve", "off", "--connect", a.client, "--room", "lobby",
                                "--user", "pat"], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
        self.addCleanup(lambda: (pat.kill(), pat.wait(), pat.stdin.close()))
        self.receiver.wait_for(lambda r: any(e["type"] == "presence" for e in r.taken), "pat coming online")
        self.receiver.wait_for(lambda r: len(r.seqs("r")) >= 100, "the first 100 events, from a")
        self.receiver.mode = "fail"
        a.publish("r", "ann", 50, start=101)  # acknowledged: b and c have them too
        a.call("set_receipts", {"room": "r", "receipts": True})  # and this event
        self.receiver.wait_for(lambda r: r.attempts.get("m:r:101", 0) >= 1, "a trying to deliver seq 101")
        a.kill9()
        self.receiver.mode = "ok"
        deadline = time.monotonic() + WAIT
        while True:  # the shard elects a new primary; until then a write answers unavailable
            try:
                b.publish("r", "ann", 20, start=151)
                break
            except AssertionError as e:
                if "unavailable" not in str(e) or time.monotonic() > deadline:
                    raise
                b.api.close()
        self.receiver.wait_for(lambda r: set(range(1, 171)) <= set(r.seqs("r")), "every event after the failover")
        seqs = self.receiver.seqs("r")
        self.assertEqual(seqs[:100], list(range(1, 101)), "a delivered the first 100 in order")
        rest = seqs[100:]
        self.assertEqual(set(range(101, 171)) - set(rest), set(), "nothing after a's first 100 is missing")
        starts_over = [i for i in range(1, len(rest)) if rest[i] != rest[i - 1] + 1]
        self.assertLessEqual(len(starts_over), 1, rest)
        # The room's membership and room events: a's, then the one a stored and did not
        # deliver, from b, then b's own, numbered on.
        b.call("set_receipts", {"room": "r", "receipts": False})
        self.receiver.wait_for(lambda r: any(e["id"] == "e:r:5" for e in r.taken), "the events after the failover")
        with self.receiver.cond:
            events = {}
            for e in self.receiver.taken:
                if e["type"] in ("membership", "room") and e["room"] == "r":
                    events.setdefault(e["n"], (e["id"], e["event"], e.get("user"), e.get("receipts")))
            keys = [m["key"] for n in self.receiver.taken if n["type"] == "notification" for m in n["messages"]]
        self.assertEqual(events, {1: ("e:r:1", "created", None, None), 2: ("e:r:2", "joined", "ann", None),
                                  3: ("e:r:3", "added", "cy", None), 4: ("e:r:4", "receipts", None, True),
                                  5: ("e:r:5", "receipts", None, False)})
        # cy (offline throughout) is notified of every message, each key at least once.
        self.receiver.wait_for(lambda r: {"cy:r:%d" % s for s in range(1, 171)} <= {
            m["key"] for n in r.taken if n["type"] == "notification" for m in n["messages"]}, "cy's 170 notifications")
        self.receiver.wait_for(lambda r: any(e["type"] == "presence" and e["event"] == "offline" for e in r.taken),
                               "pat going offline, told by b")
        # c has heard of a's going too; give it a beat to tell (it must not): b's next
        # event arriving after c's heartbeat has passed.
        b.call("set_receipts", {"room": "r", "receipts": True})
        self.receiver.wait_for(lambda r: any(e["id"] == "e:r:6" for e in r.taken), "b's next event")
        with self.receiver.cond:
            presence = [(e["event"], e["user"], e["node"]) for e in self.receiver.taken if e["type"] == "presence"]
        self.assertEqual(presence, [("online", "pat", "a"), ("offline", "pat", "b")])
        self.assertEqual(self.receiver.bad, [])

    def test_notifications_reach_the_offline_members_their_level_asks_for(self):
        node = self.node(webhook("push", self.receiver.url(), events=["notification"], window_ms=300))
        node.call("create_room", {"room": "team", "user": "ann"})
        for user in ("bob", "cy"):
            node.call("add_member", {"room": "team", "user": user})
        # bob is online: a terminal chat of his holds a presence session.
        bob = subprocess.Popen([BINARY, "chat", "--curve", "off", "--connect", node.client, "--room", "team",
                                "--user", "bob"], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
        self.addCleanup(lambda: (bob.kill(), bob.wait()))
        deadline = time.monotonic() + WAIT
        while "bob" not in [u["user"] for u in node.call("who", {"room": "team"})["users"]]:
            self.assertLess(time.monotonic(), deadline, "bob never showed as online")
            time.sleep(0.05)  # polling presence; the deadline bounds it

        def notes(user):
            with self.receiver.cond:
                return [e for e in self.receiver.taken if e["user"] == user]

        node.call("publish", {"room": "team", "user": "ann", "cmid": "1", "body": "standup in 5"})
        node.call("publish", {"room": "team", "user": "ann", "cmid": "2", "body": "@cy notes?", "mentions": ["cy"]})
        node.call("publish", {"room": "team", "user": "bob", "cmid": "3", "body": "bob here"})
        self.receiver.wait_for(lambda r: sum(len(e["messages"]) for e in r.taken if e["user"] == "cy") >= 3,
                               "cy's notifications of 3 messages")
        self.receiver.wait_for(lambda r: any(e["user"] == "ann" for e in r.taken), "ann's notification")
        cy = notes("cy")
        self.assertEqual([(m["seq"], m["user"], m["preview"], m["mentioned"], m["key"]) for e in cy for m in e["messages"]],
                         [(1, "ann", "standup in 5", False, "cy:team:1"), (2, "ann", "@cy notes?", True, "cy:team:2"),
                          (3, "bob", "bob here", False, "cy:team:3")])
        self.assertEqual((cy[0]["type"], cy[0]["room"], cy[0]["mentioned"]), ("notification", "team", True))
        self.assertEqual(len(cy), 1, "a window gathers a burst into one notification: %s" % cy)
        self.assertEqual((cy[0]["id"], cy[0]["count"]), ("n:cy:team:1-3", 3))
        (ann,) = notes("ann")
        self.assertEqual([m["seq"] for m in ann["messages"]], [3], "ann hears of bob's, not of her own")
        self.assertEqual(notes("bob"), [], "bob is online")
        self.assertEqual(self.receiver.bad, [])

        # cy wants mentions only; a message she read before the window closed is not one.
        self.assertEqual(node.call("set_notify", {"room": "team", "user": "cy", "level": "mentions"})["effective"],
                         "mentions")
        node.call("set_notify", {"room": "team", "user": "ann", "level": "none"})
        node.call("publish", {"room": "team", "user": "bob", "cmid": "4", "body": "no mention"})
        read = node.call("publish", {"room": "team", "user": "bob", "cmid": "5", "body": "@cy read at once",
                                     "mentions": ["cy"]})["seq"]
        node.call("mark_read", {"room": "team", "user": "cy", "seq": read})
        node.call("publish", {"room": "team", "user": "bob", "cmid": "6", "body": "@cy later", "mentions": ["cy"]})
        self.receiver.wait_for(lambda r: any(m["seq"] == 6 for e in r.taken for m in e["messages"]), "seq 6's")
        self.assertEqual([m["seq"] for e in notes("cy")[1:] for m in e["messages"]], [6],
                         "mentions only, and not one she had read")
        self.assertEqual(len(notes("ann")), 1, "ann chose none")

    def test_https_receivers_are_checked_against_the_trusted_certificates(self):
        certs = tempfile.mkdtemp(prefix="switchboard-webhook-tls-")
        self.addCleanup(shutil.rmtree, certs, True)
        cert, key = os.path.join(certs, "cert.pem"), os.path.join(certs, "key.pem")
        made = subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                               "-nodes", "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost",
                               "-days", "1", "-keyout", key, "-out", cert],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=WAIT)
        self.assertEqual(made.returncode, 0, made.stdout)
        self.receiver.close()
        self.receiver = Receiver(tls=(cert, key))
        port = self.receiver.port
        # The certificate is for "localhost": the same receiver by its IP address is not it.
        node = self.node(webhook("good", "https://localhost:%d/in" % port, rooms=["r"]) +
                         webhook("wrong", "https://127.0.0.1:%d/in" % port, rooms=["other"]),
                         env={"SSL_CERT_FILE": cert})
        for room in ("r", "other"):
            node.call("create_room", {"room": room, "user": "ann"})
            node.publish(room, "ann", 5)
        self.receiver.wait_for(lambda r: len(r.seqs("r")) >= 5, "5 events over https")
        self.assert_in_order_once("r", 5)
        node.wait_metric("switchboard_webhook_failures_total", "wrong", lambda v: v >= 1, ">= 1")
        with self.receiver.cond:
            self.assertEqual([e for e in self.receiver.taken if e["webhook"] == "wrong"], [],
                             "a certificate for another host is refused")
        self.assertIn("TLS handshake failed", node.log())

    def test_a_bad_webhook_is_refused_with_its_line(self):
        d = tempfile.mkdtemp(prefix="switchboard-webhook-")
        try:
            path = os.path.join(d, "topology.toml")
            with open(path, "w") as f:
                f.write('[nodes.a]\nclient = "tcp://127.0.0.1:*"\ndata = "%s"\n\n[webhooks.x]\n'
                        'url = "ftp://example.com/in"\nsecret = "%s"\n' % (os.path.join(d, "s"), SECRET))
            run = subprocess.run([BINARY, "run", "--config", path, "--node", "a"], capture_output=True, text=True,
                                 timeout=WAIT)
            self.assertNotEqual(run.returncode, 0)
            self.assertIn("topology.toml:6:", run.stderr)
            self.assertIn("must start with http:// or https://", run.stderr)
        finally:
            shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    BINARY = sys.argv[1]
    unittest.main(argv=[sys.argv[0]] + sys.argv[2:])
