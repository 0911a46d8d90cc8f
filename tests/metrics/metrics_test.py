#!/usr/bin/python3
"""A node's metrics endpoint (docs/METRICS.md), scraped over HTTP from a real
`switchboard run` process and read with a real Prometheus parser (Debian's
python3-prometheus-client): the figures must be what the requests made here produced.

Usage: metrics_test.py SWITCHBOARD_BINARY SOURCE_DIR [unittest args]

Every wait is on an event (a reply, a message, a ready line, a figure reaching its
value) with a deadline; nothing sleeps in place of synchronisation.
"""
import http.client
import json
import os
import re
import sys
import time
import unittest
import urllib.error
import urllib.parse
import urllib.request

import msgpack
import zmq
from prometheus_client.parser import text_string_to_metric_families

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "bridge"))
import bridge_protocol_test as bridge  # noqa: E402  (its Node runs `switchboard run`)

BINARY = None
SOURCE_DIR = None
WAIT = 20.0  # seconds any one expected event may take on a loaded 2-core box
N = 25       # messages published


def start_node():
    """A `switchboard run` process (the bridge test's Node: a bridge, data in a temp dir)
    with its metrics on a port it picks; client, pub, presence and metrics_url read
    from its ready line."""
    bridge.BINARY = BINARY
    bridge.WEB_DIR = os.path.join(SOURCE_DIR, "examples", "web")
    node = bridge.Node("--metrics", "127.0.0.1:*")
    fields = dict(re.findall(r" (\w+)=(\S+)", node.ready))
    if "metrics" not in fields:
        node.stop()
        raise RuntimeError("the node did not serve metrics; it printed: " + node.ready + node.log)
    node.client, node.pub, node.presence = fields["client"], fields["pub"], fields["presence"]
    node.metrics_url = fields["metrics"]
    return node


def secure(socket, node):
    """Makes `socket` a CURVE client of `node` (docs/SECURITY.md): the node's public key
    and the local client keypair it made in DATA/keys and admits."""
    def line(name):
        with open(os.path.join(node.data, "keys", name)) as f:
            return f.readline().strip().encode()
    socket.curve_serverkey = line("node.key.pub")
    socket.curve_publickey = line("client.key.pub")
    socket.curve_secretkey = line("client.key")


class Dealer:
    """Requests to an actor's ROUTER, as docs/PROTOCOL.md says: one msgpack map a frame."""

    def __init__(self, ctx, node, endpoint):
        self.socket = ctx.socket(zmq.DEALER)
        self.socket.setsockopt(zmq.LINGER, 0)
        secure(self.socket, node)
        self.socket.connect(endpoint)
        self.next_id = 1

    def call(self, op, **fields):
        request_id = self.next_id
        self.next_id += 1
        self.socket.send(msgpack.packb({"v": 1, "op": op, "id": request_id, **fields}, use_bin_type=True))
        return self.receive(request_id)

    def receive(self, request_id):
        deadline = time.monotonic() + WAIT
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not self.socket.poll(int(remaining * 1000) + 1):
                raise AssertionError(f"no reply to request {request_id} within {WAIT} s")
            reply = msgpack.unpackb(self.socket.recv(), raw=False)
            if reply.get("id") == request_id:
                return reply


def scrape(url):
    """{(name, frozenset of labels but node): value} of every sample, and the families."""
    with urllib.request.urlopen(url, timeout=WAIT) as response:
        content_type = response.headers["Content-Type"]
        text = response.read().decode()
    families = list(text_string_to_metric_families(text))
    samples = {}
    for family in families:
        for s in family.samples:
            labels = frozenset((k, v) for k, v in s.labels.items() if k != "node")
            samples[(s.name, labels)] = s.value
    return content_type, families, samples


def value(samples, name, **labels):
    return samples.get((name, frozenset(labels.items())), 0.0)


class NodeTest(unittest.TestCase):
    """A node of the class's own: the figures its tests read are theirs alone."""

    @classmethod
    def setUpClass(cls):
        cls.node = start_node()
        cls.ctx = zmq.Context()

    @classmethod
    def tearDownClass(cls):
        cls.ctx.destroy(0)
        code = cls.node.stop()
        assert code == 0, "the node exited with %s:\n%s" % (code, cls.node.log)

    def wait_for(self, name, expected, **labels):
        """Scrapes until `name{labels}` is `expected` (figures set after a reply lag it)."""
        deadline = time.monotonic() + WAIT
        while True:
            _, _, samples = scrape(self.node.metrics_url)
            got = value(samples, name, **labels)
            if got == expected or time.monotonic() > deadline:
                self.assertEqual(got, expected, f"{name}{labels}")
                return samples


class MetricsEndpoint(NodeTest):
    def test_the_scrape_counts_what_the_node_did(self):
        chat = Dealer(self.ctx, self.node, self.node.client)
        self.assertEqual(chat.call("create_room", room="ops", user="ann")["op"], "create_room")
        self.assertEqual(chat.call("join", room="ops", user="ann")["op"], "join")
        sub = self.ctx.socket(zmq.SUB)
        sub.setsockopt(zmq.LINGER, 0)
        secure(sub, self.node)
        sub.connect(self.node.pub)
        sub.setsockopt(zmq.SUBSCRIBE, b"ops\0")
        # The subscription is live once a message published after it arrives (a SUB
        # joins late): publish probes until one does; they are part of the count.
        published = 0
        while True:
            ack = chat.call("publish", room="ops", user="ann", cmid=f"m{published}", body="probe")
            self.assertEqual(ack["op"], "publish", ack)
            published += 1
            if sub.poll(200):
                break
            self.assertLess(published, 50, "the SUB never got a message")
        while published < N:
            self.assertEqual(chat.call("publish", room="ops", user="ann", cmid=f"m{published}", body="hi")["op"],
                             "publish")
            published += 1
        # The subscriber gets every message from the first it saw on, in order, once.
        topic, payload = sub.recv_multipart()
        self.assertEqual(topic, b"ops\0")
        seq = msgpack.unpackb(payload, raw=False)["seq"]
        while seq < N:
            self.assertTrue(sub.poll(int(WAIT * 1000)), f"message {seq + 1} of {N} never came")
            _, payload = sub.recv_multipart()
            self.assertEqual(msgpack.unpackb(payload, raw=False)["seq"], seq + 1)
            seq += 1
        retry = chat.call("publish", room="ops", user="ann", cmid="m0", body="probe")  # stored once
        self.assertTrue(retry["duplicate"])
        failed = chat.call("publish", room="nowhere", user="ann", cmid="x", body="lost")
        self.assertEqual((failed["op"], failed["code"]), ("error", "no_such_room"))
        presence = Dealer(self.ctx, self.node, self.node.presence)
        self.assertEqual(presence.call("session_open", session="s1", user="ann")["op"], "session_open")

        content_type, families, samples = scrape(self.node.metrics_url)
        self.assertTrue(content_type.startswith("text/plain; version=0.0.4"), content_type)
        types = {f.name: f.type for f in families}
        self.assertEqual(types["switchboard_messages_received"], "counter")
        self.assertEqual(types["switchboard_publish_durable_seconds"], "histogram")
        self.assertEqual(types["switchboard_presence_sessions"], "gauge")

        total = N + 2  # the retry and the failed publish are publishes too
        self.assertEqual(value(samples, "switchboard_messages_received_total", actor="chat", type="publish"), total)
        self.assertEqual(value(samples, "switchboard_messages_sent_total", actor="chat", type="publish"), N + 1)
        self.assertEqual(value(samples, "switchboard_messages_sent_total", actor="chat", type="error"), 1)
        self.assertEqual(value(samples, "switchboard_errors_total", actor="chat", code="no_such_room"), 1)
        self.assertEqual(value(samples, "switchboard_errors_total", actor="chat", code="not_member"), 0)
        self.assertEqual(value(samples, "switchboard_events_published_total", actor="chat", type="message"), N)
        self.assertEqual(value(samples, "switchboard_publish_durable_seconds_count"), N)  # stored once each
        self.assertEqual(value(samples, "switchboard_publish_ack_seconds_count"), N + 1)  # the retry is acked too
        self.assertEqual(value(samples, "switchboard_publish_ack_seconds_bucket", le="+Inf"), N + 1)
        self.assertGreater(value(samples, "switchboard_publish_durable_seconds_sum"), 0)
        # Every record reached LMDB through a group commit: the room, its member, N messages.
        self.assertEqual(value(samples, "switchboard_group_commit_records_sum"), N + 2)
        self.assertEqual(value(samples, "switchboard_group_commit_seconds_count"),
                         value(samples, "switchboard_group_commit_records_count"))
        self.assertEqual(value(samples, "switchboard_rooms"), 1)
        self.assertGreater(value(samples, "switchboard_store_used_bytes"), 0)
        self.assertLessEqual(value(samples, "switchboard_store_used_bytes"),
                             value(samples, "switchboard_store_map_bytes"))
        self.assertEqual(value(samples, "switchboard_presence_sessions"), 1)
        self.assertEqual(value(samples, "switchboard_messages_received_total", actor="presence", type="session_open"), 1)
        self.assertEqual(value(samples, "switchboard_events_published_total", actor="presence", type="online"), 1)
        self.assertGreaterEqual(value(samples, "switchboard_actor_messages_total", actor="chat"), total + 2)

        # A history read goes to the history thread, beside persistence: it never waits in
        # persistence's mailbox behind a commit.
        committing = value(samples, "switchboard_actor_messages_total", actor="persistence")
        reading = value(samples, "switchboard_actor_messages_total", actor="history")
        reads = value(samples, "switchboard_messages_received_total", actor="persistence", type="read")
        page = chat.call("history", room="ops", limit=5)
        self.assertEqual(page["op"], "history", page)
        self.assertEqual([m["seq"] for m in page["messages"]], list(range(N - 4, N + 1)))
        _, _, samples = scrape(self.node.metrics_url)
        self.assertEqual(value(samples, "switchboard_actor_messages_total", actor="history"), reading + 1)
        self.assertEqual(value(samples, "switchboard_actor_messages_total", actor="persistence"), committing)
        self.assertEqual(value(samples, "switchboard_messages_received_total", actor="persistence", type="read"), reads + 1)

        self.assertEqual(presence.call("session_close", session="s1")["op"], "session_close")
        self.wait_for("switchboard_presence_sessions", 0)
        chat.socket.close(0)
        presence.socket.close(0)
        sub.close(0)

    def test_unknown_paths_are_404_and_json_has_the_same_figures(self):
        base = self.node.metrics_url[: -len("/metrics")]
        with self.assertRaises(urllib.error.HTTPError) as missing:
            urllib.request.urlopen(base + "/nothing", timeout=WAIT)
        self.assertEqual(missing.exception.code, 404)
        with urllib.request.urlopen(base + "/metrics.json", timeout=WAIT) as response:
            self.assertEqual(response.headers["Content-Type"], "application/json")
            doc = json.load(response)
        names = {m["name"] for m in doc["metrics"]}
        _, families, _ = scrape(self.node.metrics_url)
        # The parser drops a counter's _total from the family name; the JSON keeps it.
        self.assertEqual({n[: -len("_total")] if n.endswith("_total") else n for n in names},
                         {f.name for f in families})


    def test_the_grafana_dashboard_asks_only_for_metrics_the_node_serves(self):
        with open(os.path.join(SOURCE_DIR, "examples", "grafana", "switchboard.json")) as f:
            dashboard = json.load(f)
        exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
        self.assertGreaterEqual(len(exprs), 10)
        asked = set(re.findall(r"switchboard_\w+", " ".join(exprs)))
        _, families, _ = scrape(self.node.metrics_url)
        served = set()
        for f in families:
            served.add(f.name)
            served.update(s.name for s in f.samples)  # _total, _bucket, _sum, _count
        self.assertEqual(asked - served, set())


class TrimmedMessages(NodeTest):
    def test_messages_removed_are_counted_by_what_removed_them(self):
        chat = Dealer(self.ctx, self.node, self.node.client)
        self.assertEqual(chat.call("create_room", room="kept", user="bo")["op"], "create_room")
        self.assertEqual(chat.call("join", room="kept", user="bo")["op"], "join")
        for i in range(30):
            self.assertEqual(chat.call("publish", room="kept", user="bo", cmid=f"k{i}", body="x")["op"], "publish")
        _, _, samples = scrape(self.node.metrics_url)
        by_request = value(samples, "switchboard_trimmed_messages_total", by="request")
        by_retention = value(samples, "switchboard_trimmed_messages_total", by="retention")
        # An owner's trim: seqs 1..12 go.
        trim = chat.call("trim_history", room="kept", before=13, **{"as": "bo"})
        self.assertEqual((trim["op"], trim["first_seq"]), ("trim_history", 13), trim)
        self.wait_for("switchboard_trimmed_messages_total", by_request + 12, by="request")
        # Asking again below the first seq removes nothing, and counts nothing.
        again = chat.call("trim_history", room="kept", before=13)
        self.assertEqual((again["op"], again["first_seq"]), ("trim_history", 13), again)
        # Retention keeping 8: the node removes 13..22 on its own (it looks once a second).
        kept = chat.call("set_retention", room="kept", max_messages=8, **{"as": "bo"})
        self.assertEqual(kept["op"], "set_retention", kept)
        samples = self.wait_for("switchboard_trimmed_messages_total", by_retention + 10, by="retention")
        self.assertEqual(value(samples, "switchboard_trimmed_messages_total", by="request"), by_request + 12)
        page = chat.call("history", room="kept", after=0, limit=100)
        self.assertEqual([m["seq"] for m in page["messages"]], list(range(23, 31)))
        chat.socket.close(0)


class ApiRequests(NodeTest):
    def test_api_requests_are_counted_by_status_and_connections_seen(self):
        fields = dict(re.findall(r" (\w+)=(\S+)", self.node.ready))
        self.assertIn("api", fields, "the embedded default serves the HTTP API: " + self.node.ready)
        url = urllib.parse.urlsplit(fields["api"])
        with open(os.path.join(self.node.data, "keys", "api.key")) as f:
            key = f.readline().strip()
        conn = http.client.HTTPConnection(url.hostname, url.port, timeout=WAIT)

        def post(op, body, headers):
            conn.request("POST", url.path + op, body=json.dumps(body), headers=headers)
            response = conn.getresponse()
            response.read()
            return response.status

        auth = {"Authorization": "Bearer " + key}
        self.assertEqual(post("create_room", {"room": "api", "user": "bo"}, auth), 200)
        self.assertEqual(post("last_seq", {"room": "api"}, auth), 200)
        self.assertEqual(post("last_seq", {"room": "none-such"}, auth), 404)
        self.assertEqual(post("last_seq", {"room": "api"}, {}), 401)
        # The connection is open while the figures are read.
        samples = self.wait_for("switchboard_api_requests_total", 2, status="200")
        self.assertEqual(value(samples, "switchboard_api_requests_total", status="404"), 1)
        self.assertEqual(value(samples, "switchboard_api_requests_total", status="401"), 1)
        self.assertEqual(value(samples, "switchboard_api_connections"), 1)
        conn.close()
        self.wait_for("switchboard_api_connections", 0)


if __name__ == "__main__":
    BINARY = sys.argv.pop(1)
    SOURCE_DIR = sys.argv.pop(1)
    unittest.main()
