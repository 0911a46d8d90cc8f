#!/usr/bin/python3
"""The HTTP server API (docs/API.md) of real `switchboard run` processes, spoken with
http.client and checked against docs/openapi.json with jsonschema (Debian's
python3-jsonschema): every route the document lists answers, with a status it lists
and a body its schema admits; publishing is idempotent by cmid; one connection carries
many requests; keys, grants, malformed requests and TLS get the answers docs/API.md
gives.

Usage: api_test.py SWITCHBOARD_BINARY SOURCE_DIR [unittest args]

Every wait is on an event (a ready line, a reply) with a deadline: the nodes' output
is read by a thread into a queue taken from with a timeout, and every socket has one;
nothing sleeps in place of synchronisation.
"""
import http.client
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
import urllib.parse

import jsonschema
import jsonschema.validators

BINARY = None
SOURCE_DIR = None
WAIT = 30.0            # seconds any one expected event may take on a loaded 2-core box
MAX_BODY = 256 * 1024  # the request frame limit (docs/API.md, 413)


# ---- the document -----------------------------------------------------------------------

_SPEC = None


def spec():
    """docs/openapi.json, read once."""
    global _SPEC
    if _SPEC is None:
        with open(os.path.join(SOURCE_DIR, "docs", "openapi.json")) as f:
            _SPEC = json.load(f)
    return _SPEC


def resolve(node):
    """`node`, or what its `$ref` (a local one, `#/...`) points to in the document."""
    while isinstance(node, dict) and "$ref" in node:
        ref = node["$ref"]
        assert ref.startswith("#/"), "a reference outside the document: " + ref
        node = spec()
        for part in ref[2:].split("/"):
            node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


def validator(schema):
    """A validator of `schema` (a part of the document) whose `$ref`s resolve in the
    document. OpenAPI 3.0's schemas are JSON Schema draft 4 with a few additions."""
    return jsonschema.Draft4Validator(schema, resolver=jsonschema.validators.RefResolver.from_schema(spec()))


def spec_ops():
    """{op: its `post` operation} of every `/api/v1/OP` path of the document."""
    return {path[len("/api/v1/"):]: item["post"] for path, item in spec()["paths"].items()}


def api_md_ops():
    """The operations docs/API.md lists: the backquoted names of its sentence "The
    operations: `hello`, ... and `who` and `status` (presence)."."""
    with open(os.path.join(SOURCE_DIR, "docs", "API.md")) as f:
        text = f.read()
    m = re.search(r"The operations:(.*?)\(presence\)", text, re.S)
    assert m, "docs/API.md has no sentence listing the operations"
    return set(re.findall(r"`(\w+)`", m.group(1)))


# ---- nodes ------------------------------------------------------------------------------

def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def default_args(data, *extra, bridge=("--bridge", "off")):
    """`switchboard run` with no topology file: data in `data`, ports the node picks."""
    return ["--data", data, "--listen", "tcp://127.0.0.1:*", "--durability", "nosync", *bridge,
            "--metrics", "off", "--api", "127.0.0.1:*", "--limit", "publish_per_s=0",
            "--limit", "requests_per_s=0", *extra]


class Node:
    """A `switchboard run` process, ready once it printed its ready line; `api_url` is
    the ready line's `api=`. `args` is a function of the node's temp dir giving the
    arguments after `run`; `store` is the data directory within it (its keys/api.key is
    the node's own key). The log goes to a file; stop() returns the exit code and keeps
    the log in `log`."""

    def __init__(self, args=default_args, store=""):
        self.dir = tempfile.mkdtemp(prefix="switchboard-api-")
        self.store = os.path.join(self.dir, store) if store else self.dir
        self.log = ""
        self.log_path = os.path.join(self.dir, "node.log")
        with open(self.log_path, "w") as log:
            self.proc = subprocess.Popen([BINARY, "run", *args(self.dir)], stdout=subprocess.PIPE, stderr=log,
                                         text=True)
        self.lines = queue.Queue()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()
        try:
            self.ready = self._ready_line()
            m = re.search(r" api=(\S+)", self.ready)
            if not m:
                raise RuntimeError("the node's ready line has no api=: " + self.ready)
            self.api_url = m.group(1)
        except BaseException:
            self.stop()
            raise

    def _read(self):  # every line of stdout, then None: the pipe never fills
        for line in self.proc.stdout:
            self.lines.put(line)
        self.lines.put(None)

    def _ready_line(self):
        deadline = time.monotonic() + WAIT
        printed = []
        while True:
            try:
                line = self.lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                line = None
            if line is None:
                raise RuntimeError("no ready line within %s s (exit code %s); it printed:\n%s\nits log:\n%s" % (
                    WAIT, self.proc.poll(), "".join(printed), self._tail()))
            if line.startswith("switchboard ready "):
                return line.rstrip("\n")
            printed.append(line)

    def _tail(self):
        with open(self.log_path) as f:
            return f.read()[-3000:]

    def key(self):
        """The node's own key: the first line of DATA/keys/api.key."""
        with open(os.path.join(self.store, "keys", "api.key")) as f:
            return f.readline().strip()

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(WAIT)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.reader.join(WAIT)
        self.proc.stdout.close()
        with open(self.log_path) as f:
            self.log = f.read()
        shutil.rmtree(self.dir, ignore_errors=True)
        return self.proc.returncode


# ---- HTTP -------------------------------------------------------------------------------

class Reply:
    """One HTTP answer: status, headers, text and its JSON (None when it is not JSON)."""

    def __init__(self, response, text):
        self.status = response.status
        self.headers = response.headers
        self.version = response.version
        self.text = text
        try:
            self.json = json.loads(text)
        except ValueError:
            self.json = None

    def __str__(self):
        return "HTTP %d %s" % (self.status, self.text[:3000])


DEFAULT = object()


class Api:
    """An HTTP/1.1 connection to a node's API, kept open across requests, with a key
    (`key=None`: no Authorization header). `cafile`: the CA of an https:// node."""

    def __init__(self, url, key, cafile=None):
        parts = urllib.parse.urlsplit(url)
        self.url, self.key, self.prefix = url, key, parts.path
        if parts.scheme == "https":
            context = ssl.create_default_context(cafile=cafile)
            self.conn = http.client.HTTPSConnection(parts.hostname, parts.port, timeout=WAIT, context=context)
        else:
            self.conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=WAIT)

    def request(self, method, path, body=b"", headers=None, key=DEFAULT):
        key = self.key if key is DEFAULT else key
        sent = dict(headers or {})
        if key is not None:
            sent.setdefault("Authorization", "Bearer " + key)
        self.conn.request(method, path, body=body, headers=sent)
        response = self.conn.getresponse()
        return Reply(response, response.read().decode("utf-8", "replace"))

    def post(self, op, body=None, raw=None, **kwargs):
        """POST /api/v1/OP with `body` as JSON (or the bytes `raw`)."""
        data = raw if raw is not None else json.dumps({} if body is None else body).encode()
        return self.request("POST", self.prefix + op, data, **kwargs)

    def fresh(self):
        """Another connection to the same API with the same key."""
        return Api(self.url, self.key)

    def close(self):
        self.conn.close()


def once(api, method, path, body=b"", headers=None, key=DEFAULT):
    """One request on a connection of its own (for requests after which a server may
    close the connection: a body too large, a method it does not take)."""
    conn = api.fresh()
    try:
        return conn.request(method, path, body, headers, key)
    finally:
        conn.close()


# ---- tests ------------------------------------------------------------------------------

class ApiTest(unittest.TestCase):
    """Assertions on replies against the document; subclasses get a node of their own
    (setUpClass) unless they start theirs."""

    maxDiff = None
    start_node = True

    @classmethod
    def setUpClass(cls):
        if cls.start_node:
            cls.node = Node()
            cls.api = Api(cls.node.api_url, cls.node.key())

    @classmethod
    def tearDownClass(cls):
        if cls.start_node:
            cls.api.close()
            code = cls.node.stop()
            assert code == 0, "the node exited with %s:\n%s" % (code, cls.node.log[-3000:])

    def documented(self, op, reply, body=None):
        """Checks `reply` (to POST /api/v1/OP with `body`) against docs/openapi.json: a
        status listed for the route, a body its schema admits, JSON."""
        ops = spec_ops()
        self.assertTrue(op in ops, "%s: a route docs/openapi.json does not list" % op)
        if body is not None:
            schema = ops[op]["requestBody"]["content"]["application/json"]["schema"]
            errors = [e.message for e in validator(schema).iter_errors(body)]
            self.assertEqual(errors, [], "the test's own %s body is not what the document says: %s" % (op, body))
        responses = ops[op]["responses"]
        self.assertTrue(str(reply.status) in responses, "%s answered %d, a status docs/openapi.json does not list "
                        "for it (%s): %s" % (op, reply.status, ", ".join(responses), reply))
        self.assertTrue(reply.headers.get("Content-Type", "").startswith("application/json"),
                        "%s: Content-Type %r: %s" % (op, reply.headers.get("Content-Type"), reply))
        self.assertIsNotNone(reply.json, "%s: not JSON: %s" % (op, reply))
        schema = resolve(responses[str(reply.status)])["content"]["application/json"]["schema"]
        errors = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator(schema).iter_errors(reply.json)]
        self.assertEqual(errors, [], "%s: the reply is not what docs/openapi.json says: %s" % (op, reply))
        for key in ("v", "id"):
            self.assertNotIn(key, reply.json, "%s: the reply holds %r: %s" % (op, key, reply))
        if reply.status == 200:
            self.assertEqual(reply.json["op"], op, str(reply))

    def call(self, op, body=None, status=200, code=None, api=None):
        """POST /api/v1/OP on `api` (the class's), checked against the document; the
        status must be `status` (and the error `code`). Returns the reply's JSON."""
        api = api or self.api
        reply = api.post(op, body)
        self.documented(op, reply, body)
        self.assertEqual(reply.status, status, "%s %s: %s" % (op, json.dumps(body)[:500], reply))
        if code is not None:
            self.assertEqual(reply.json["code"], code, str(reply))
        return reply.json

    def error(self, reply, status, code):
        """`reply` is an error of the document's Error schema with `status` and `code`."""
        self.assertEqual(reply.status, status, str(reply))
        self.assertIsNotNone(reply.json, "not JSON: %s" % reply)
        errors = [e.message for e in validator(resolve(spec()["components"]["schemas"]["Error"])).iter_errors(reply.json)]
        self.assertEqual(errors, [], "not an Error: %s" % reply)
        self.assertEqual(reply.json["code"], code, str(reply))
        self.assertTrue(reply.headers.get("Content-Type", "").startswith("application/json"), str(reply))
        return reply.json


class Document(unittest.TestCase):
    """docs/openapi.json itself: what a client generator reads."""

    def test_the_document_lists_the_operations_of_api_md_and_each_route_is_complete(self):
        doc = spec()
        self.assertEqual(doc["openapi"], "3.0.3")
        self.assertEqual(set(spec_ops()), api_md_ops(), "docs/openapi.json and docs/API.md list other operations")
        self.assertEqual(len(spec_ops()), 30)
        scheme = doc["components"]["securitySchemes"]["bearerAuth"]
        self.assertEqual((scheme["type"], scheme["scheme"]), ("http", "bearer"))
        self.assertEqual(doc["security"], [{"bearerAuth": []}])
        error = doc["components"]["schemas"]["Error"]
        self.assertEqual(set(error["required"]), {"op", "code", "message"})
        self.assertEqual(error["properties"]["op"]["enum"], ["error"])
        seen_ids = set()
        for path, item in doc["paths"].items():
            self.assertTrue(path.startswith("/api/v1/"), path)
            self.assertEqual(list(item), ["post"], path)
            post = item["post"]
            self.assertNotIn(post["operationId"], seen_ids)
            seen_ids.add(post["operationId"])
            self.assertTrue(post.get("summary"), path)
            request = post["requestBody"]["content"]["application/json"]["schema"]
            self.assertIn("as", request["properties"], path)
            reply = post["responses"]["200"]["content"]["application/json"]["schema"]
            self.assertEqual(reply["properties"]["op"]["enum"], [path[len("/api/v1/"):]])
            self.assertIn("op", reply["required"])
            self.assertIs(reply["additionalProperties"], True, path)
            self.assertFalse({"v", "id"} & set(reply["properties"]), path)
            for status, response in post["responses"].items():
                if status == "200":
                    continue
                self.assertIn(status, {"400", "401", "403", "404", "409", "413", "422", "429", "500", "503", "507"})
                schema = resolve(response)["content"]["application/json"]["schema"]
                self.assertEqual(schema, {"$ref": "#/components/schemas/Error"}, (path, status))
            self.assertIn("401", post["responses"], path)
            self.assertIn("WWW-Authenticate", resolve(post["responses"]["401"])["headers"])


    def test_the_error_codes_are_those_of_the_protocol(self):
        with open(os.path.join(SOURCE_DIR, "docs", "PROTOCOL.md")) as f:
            text = f.read()
        table = text[text.index("## 3. Errors"):text.index("## 4. Operations")]
        codes = set(re.findall(r"^\| `(\w+)` \|", table, re.M))
        enum = spec()["components"]["schemas"]["Error"]["properties"]["code"]["enum"]
        self.assertEqual(set(enum), codes, "docs/openapi.json's error codes and docs/PROTOCOL.md section 3's")


class Routes(ApiTest):
    def test_every_documented_route_answers_as_documented(self):
        done = set()

        def call(op, body, status=200, code=None):
            done.add(op)
            return self.call(op, body, status, code)

        room, imported = "spec-room", "spec-import"
        hello = call("hello", {})
        self.assertEqual(hello["protocol"], 1)
        self.assertGreaterEqual(hello["max_batch"], 100)
        call("ping", {})
        self.assertTrue(call("create_room", {"room": room, "user": "ann", "private": False})["created"])
        self.assertTrue(call("join", {"room": room, "user": "bob"})["joined"])
        first = call("publish", {"room": room, "user": "ann", "cmid": "spec-1", "body": "hello bob",
                                 "mentions": ["bob"]})
        self.assertEqual((first["room"], first["seq"], first["duplicate"]), (room, 1, False))
        batch = call("publish_batch", {"room": room, "user": "bob",
                                       "items": [["spec-2", "two"], ["spec-3", "three", ["ann"]]]})
        self.assertEqual([r[0] for r in batch["results"]], [2, 3], batch)
        page = call("history", {"room": room, "limit": 10})
        self.assertEqual([m["seq"] for m in page["messages"]], [1, 2, 3])
        self.assertEqual(page["messages"][0]["mentions"], ["bob"])
        self.assertEqual(call("last_seq", {"room": room}), {"op": "last_seq", "room": room, "seq": 3})
        marked = call("mark_read", {"room": room, "user": "bob", "seq": 1})
        self.assertEqual((marked["seq"], marked["unread"]), (3, 0), marked)  # bob's batch moved his marker to 3
        self.assertTrue(call("set_receipts", {"room": room, "receipts": True})["changed"])
        notify = call("set_notify", {"room": room, "user": "bob", "level": "mentions"})
        self.assertEqual((notify["level"], notify["effective"]), ("mentions", "mentions"), notify)
        notify = call("set_notify", {"room": room, "user": "bob", "level": "default"})
        self.assertEqual((notify["level"], notify["effective"]), ("default", "all"), "two members: all")
        loud = self.api.post("set_notify", {"room": room, "user": "bob", "level": "loud"})
        self.assertEqual((loud.status, loud.json["code"]), (400, "bad_field"), loud)
        call("set_notify", {"room": room, "user": "zed", "level": "none"}, 403, "not_member")
        markers = call("read_markers", {"room": room})["markers"]
        self.assertEqual([(m["user"], m["seq"]) for m in markers], [("ann", 1), ("bob", 3)])
        self.assertIn(room, call("rooms", {})["rooms"])
        mine = call("rooms", {"user": "bob", "limit": 10})
        self.assertEqual([s["room"] for s in mine["summaries"]], [room], mine)
        self.assertEqual(call("shards", {})["shards"][0]["name"], "default")
        members = call("members", {"room": room})
        self.assertEqual((members["members"], members["roles"]), (["ann", "bob"], ["owner", "member"]))
        self.assertTrue(call("add_member", {"room": room, "user": "cy", "role": "reader"})["added"])
        self.assertTrue(call("set_role", {"room": room, "user": "cy", "role": "member"})["changed"])
        self.assertTrue(call("remove_member", {"room": room, "user": "cy"})["removed"])
        self.assertTrue(call("ban", {"room": room, "user": "cy"})["banned"])
        self.assertFalse(call("ban", {"room": room, "user": "cy"})["banned"])
        call("join", {"room": room, "user": "cy"}, 403, "forbidden")
        call("add_member", {"room": room, "user": "cy"}, 403, "forbidden")
        self.assertTrue(call("unban", {"room": room, "user": "cy"})["unbanned"])
        self.assertFalse(call("unban", {"room": room, "user": "cy"})["unbanned"])
        self.assertNotIn("cy", call("members", {"room": room})["members"], "an unban does not add")
        call("ban", {"room": "no-such-room", "user": "cy"}, 404, "no_such_room")
        self.assertTrue(call("add_member", {"room": room, "user": "dee"})["added"])
        self.assertTrue(call("kick", {"room": room, "user": "dee"})["removed"])
        self.assertFalse(call("kick", {"room": room, "user": "dee"})["removed"], "not a member any more")
        call("kick", {"room": room, "user": "ann", "as": "ann"}, 403, "forbidden")
        self.assertEqual(call("disconnect", {"user": "dee"}), {"op": "disconnect"})
        call("disconnect", {"user": "dee", "as": "ann"}, 403, "forbidden")
        self.assertTrue(call("leave", {"room": room, "user": "bob"})["left"])
        retention = call("set_retention", {"room": room, "max_messages": 100})
        self.assertEqual((retention["max_messages"], retention["applied_max_messages"]), (100, 100), retention)
        self.assertEqual(call("trim_history", {"room": room, "before": 2})["first_seq"], 2)
        self.assertTrue(call("create_room", {"room": imported, "user": "ann"})["created"])
        ts = int(time.time() * 1000) - 60000
        done_import = call("import_batch", {"room": imported, "first_seq": 5, "items": [
            ["ann", ts, "imp-1", "from elsewhere"], ["bob", ts + 1, "imp-2", "again", ["ann"]]]})
        self.assertEqual((done_import["first_seq"], done_import["last_seq"]), (5, 6), done_import)
        page = call("history", {"room": imported, "after": 0})
        self.assertEqual(([m["seq"] for m in page["messages"]], page.get("truncated"), page.get("first_seq")),
                         ([5, 6], True, 5), page)
        who = call("who", {"room": room})
        self.assertEqual((who["room"], who["users"], who["typing"]), (room, [], []), who)
        status = call("status", {"user": "ann"})
        self.assertEqual((status["user"], status["online"]), ("ann", False), status)
        call("call", {"service": "nobody", "user": "ann", "body": "hi"}, 404, "no_such_service")
        self.assertTrue(call("delete_room", {"room": imported})["deleted"])
        call("history", {"room": imported}, 404, "no_such_room")
        self.assertEqual(done, set(spec_ops()), "routes of the document this test did not try")


class Publishing(ApiTest):
    def test_a_published_message_is_in_history(self):
        self.call("create_room", {"room": "general", "user": "ops", "private": False})
        self.assertFalse(self.call("join", {"room": "general", "user": "ops"})["joined"])  # the creator is in
        ack = self.call("publish", {"room": "general", "user": "ops", "body": "deploy finished", "cmid": "deploy-4711"})
        self.assertEqual((ack["room"], ack["seq"], ack["duplicate"]), ("general", 1, False), ack)
        self.assertAlmostEqual(ack["ts"] / 1000, time.time(), delta=60)
        page = self.call("history", {"room": "general", "limit": 20})
        self.assertEqual(page["messages"], [{"room": "general", "seq": 1, "user": "ops", "ts": ack["ts"],
                                             "body": "deploy finished", "cmid": "deploy-4711"}])
        self.assertFalse(page["more"])

    def test_a_thread_is_paged_on_its_own_and_a_bad_reference_is_its_documented_error(self):
        self.call("create_room", {"room": "ops", "user": "ann"})
        root = self.call("publish", {"room": "ops", "user": "ann", "cmid": "r", "body": "incident 7"})["seq"]
        reply = self.call("publish", {"room": "ops", "user": "ann", "cmid": "t", "body": "mitigated", "thread": root,
                                      "reply_to": root})["seq"]
        self.call("publish", {"room": "ops", "user": "ann", "cmid": "x", "body": "unrelated"})
        page = self.call("history", {"room": "ops", "thread": root})
        self.assertEqual([m["seq"] for m in page["messages"]], [root, reply])
        self.assertEqual((page["messages"][0]["replies"], page["messages"][0]["repliers"]), (1, ["ann"]))
        self.assertEqual(page["messages"][1]["thread"], root)
        self.call("publish", {"room": "ops", "user": "ann", "cmid": "n", "body": "x", "thread": reply}, 409,
                  "nested_thread")
        self.call("publish", {"room": "ops", "user": "ann", "cmid": "m", "body": "x", "reply_to": 99}, 404,
                  "no_such_message")
        self.call("history", {"room": "ops", "thread": reply}, 404, "no_such_message")

    def test_a_retried_publish_is_stored_once(self):
        self.call("create_room", {"room": "retries", "user": "ann"})
        ack = self.call("publish", {"room": "retries", "user": "ann", "cmid": "c-1", "body": "once"})
        again = self.call("publish", {"room": "retries", "user": "ann", "cmid": "c-1", "body": "twice?"})
        self.assertEqual((again["seq"], again["ts"], again["duplicate"]), (ack["seq"], ack["ts"], True), again)
        after = self.call("publish", {"room": "retries", "user": "ann", "cmid": "c-2", "body": "next"})
        self.assertEqual(after["seq"], ack["seq"] + 1)
        page = self.call("history", {"room": "retries", "after": 0})
        self.assertEqual([(m["cmid"], m["body"]) for m in page["messages"]], [("c-1", "once"), ("c-2", "next")])

    def test_a_batch_of_100_gets_100_consecutive_seqs(self):
        self.call("create_room", {"room": "batch", "user": "ann"})
        self.call("publish", {"room": "batch", "user": "ann", "cmid": "before", "body": "first"})
        items = [["b-%d" % i, "message %d" % i] for i in range(100)]
        reply = self.call("publish_batch", {"room": "batch", "user": "ann", "items": items})
        results = reply["results"]
        self.assertEqual(len(results), 100, reply)
        self.assertEqual([r[0] for r in results], list(range(2, 102)), reply)
        self.assertEqual({r[2] for r in results}, {False}, reply)
        self.assertEqual(self.call("last_seq", {"room": "batch"})["seq"], 101)
        page = self.call("history", {"room": "batch", "after": 1, "limit": 100})
        self.assertEqual([(m["seq"], m["cmid"], m["body"]) for m in page["messages"]],
                         [(i + 2, "b-%d" % i, "message %d" % i) for i in range(100)])
        # The same batch again: stored before, every item answered with its seq, nothing new.
        again = self.call("publish_batch", {"room": "batch", "user": "ann", "items": items})
        self.assertEqual(again["results"], [[r[0], r[1], True] for r in results])
        self.assertEqual(self.call("last_seq", {"room": "batch"})["seq"], 101)


class KeepAlive(ApiTest):
    def test_many_requests_share_one_connection(self):
        api = self.api.fresh()
        try:
            self.call("create_room", {"room": "alive", "user": "ann"}, api=api)
            sock = api.conn.sock
            self.assertIsNotNone(sock, "the connection was closed after the first reply")
            local = sock.getsockname()
            for i in range(1, 151):
                reply = api.post("publish", {"room": "alive", "user": "ann", "cmid": "k%d" % i, "body": "hi"})
                self.documented("publish", reply)
                self.assertEqual((reply.status, reply.json["seq"]), (200, i), str(reply))
                self.assertEqual(reply.version, 11, "not HTTP/1.1")
                self.assertNotEqual(reply.headers.get("Connection", "").lower(), "close", str(reply))
                if i % 10 == 0:  # reads and node errors between the writes keep it open too
                    self.assertEqual(self.call("last_seq", {"room": "alive"}, api=api)["seq"], i)
                    self.call("history", {"room": "nowhere"}, 404, "no_such_room", api=api)
                    self.call("publish", {"room": "alive", "user": "zed", "cmid": "z", "body": "no"}, 403,
                              "not_member", api=api)
                self.assertIs(api.conn.sock, sock, "the connection was closed after request %d" % i)
            self.assertEqual(api.conn.sock.getsockname(), local)
        finally:
            api.close()


class ExpectContinue(ApiTest):
    def test_a_client_that_expects_100_continue_gets_it_before_it_sends_the_body(self):
        """RFC 9110 10.1.1: such a client holds its body back until the 100 (or a while)."""
        parts = urllib.parse.urlsplit(self.node.api_url)
        body = json.dumps({"room": "continued", "user": "ops"}).encode()
        head = ("POST %screate_room HTTP/1.1\r\nHost: %s:%d\r\nAuthorization: Bearer %s\r\n"
                "Content-Type: application/json\r\nContent-Length: %d\r\nExpect: 100-continue\r\n\r\n"
                % (parts.path, parts.hostname, parts.port, self.node.key(), len(body))).encode()
        with socket.create_connection((parts.hostname, parts.port), timeout=WAIT) as conn:
            conn.sendall(head)
            interim = b""
            while b"\r\n\r\n" not in interim:
                chunk = conn.recv(4096)
                self.assertTrue(chunk, "the connection closed before a 100 Continue: %r" % interim)
                interim += chunk
            self.assertTrue(interim.startswith(b"HTTP/1.1 100 Continue\r\n"), interim)
            conn.sendall(body)
            answer = interim.split(b"\r\n\r\n", 1)[1]
            while b"\r\n\r\n" not in answer or not answer.rstrip().endswith(b"}"):
                chunk = conn.recv(4096)
                self.assertTrue(chunk, "the connection closed before the answer: %r" % answer)
                answer += chunk
        self.assertTrue(answer.startswith(b"HTTP/1.1 200 OK\r\n"), answer)
        self.assertEqual(json.loads(answer.split(b"\r\n\r\n", 1)[1]), {"op": "create_room", "created": True})


class Requests(ApiTest):
    """What docs/API.md says of keys, bodies, paths and methods."""

    def test_a_request_without_a_key_the_node_admits_is_401(self):
        for key, headers in ((None, {}), ("k" * 40, {}), (None, {"Authorization": "Basic YW5uOnNlY3JldA=="}),
                             (None, {"Authorization": "Bearer"})):
            reply = once(self.api, "POST", self.api.prefix + "ping", b"{}", headers, key=key)
            self.error(reply, 401, "unauthenticated")
            self.assertTrue(reply.headers.get("WWW-Authenticate", "").startswith("Bearer"),
                            "no WWW-Authenticate: Bearer (%s): %s" % (reply.headers.get("WWW-Authenticate"), reply))
            self.documented("ping", reply)
        # The path and the method come first, the key second; the body after the key.
        self.error(once(self.api, "POST", "/nothing", b"{}", key=None), 404, "unknown_op")
        self.error(once(self.api, "GET", self.api.prefix + "ping", key=None), 405, "bad_frame")
        self.error(once(self.api, "POST", self.api.prefix + "ping", b"{not json", key=None), 401, "unauthenticated")

    def test_the_node_s_own_key_and_an_empty_body(self):
        self.assertEqual(self.call("ping"), {"op": "ping"})
        reply = self.api.post("ping", raw=b"")
        self.documented("ping", reply)
        self.assertEqual((reply.status, reply.json), (200, {"op": "ping"}), str(reply))
        # Content-Type is not looked at, and keys the node does not know are ignored.
        reply = self.api.post("hello", raw=b'{"colour": "blue"}', headers={"Content-Type": "text/plain"})
        self.documented("hello", reply)
        self.assertEqual(reply.status, 200, str(reply))

    def test_a_body_that_is_not_one_json_object_is_400_with_the_byte_position(self):
        text = b'{"room": "general",}'  # the fault: the '}', byte 20 (19 counted from 0)
        reply = self.api.post("last_seq", raw=text)
        self.documented("last_seq", reply)
        self.error(reply, 400, "bad_frame")
        numbers = [int(n) for n in re.findall(r"\d+", reply.json["message"])]
        self.assertTrue(19 in numbers or 20 in numbers, "no byte position in the message: %s" % reply)
        for raw in (b'[1, 2]', b'"room"', b'{"room": "general"} {}', b'{"room": "gen', b'\xff\xfe{}'):
            reply = self.api.post("last_seq", raw=raw)
            self.documented("last_seq", reply)
            self.assertEqual(reply.status, 400, "%r: %s" % (raw, reply))
            self.assertIn(reply.json["code"], ("bad_frame", "bad_utf8"), "%r: %s" % (raw, reply))

    def test_op_id_and_v_are_not_fields_of_a_body(self):
        for extra in ({"op": "ping"}, {"id": 1}, {"v": 1}):
            reply = self.api.post("ping", extra)
            self.documented("ping", reply)
            self.error(reply, 400, "bad_field")

    def test_a_missing_or_mistyped_field_is_400_bad_field(self):
        self.call("create_room", {"room": "fields", "user": "ann"})
        reply = self.api.post("publish", {"room": "fields", "user": "ann", "body": "no cmid"})
        self.documented("publish", reply)
        self.error(reply, 400, "bad_field")
        self.assertIn("cmid", reply.json["message"], str(reply))
        reply = self.api.post("last_seq", {"room": 5})
        self.documented("last_seq", reply)
        self.error(reply, 400, "bad_field")
        reply = self.api.post("history", {"room": "fields", "before": 5, "after": 1})
        self.documented("history", reply)
        self.error(reply, 400, "bad_field")

    def test_an_unknown_operation_or_path_is_404(self):
        for path in (self.api.prefix + "dance", self.api.prefix + "backup", self.api.prefix + "session_open",
                     self.api.prefix, "/api/v2/ping", "/api/v1/ping/more", "/ping", "/"):
            self.error(self.api.request("POST", path, b"{}"), 404, "unknown_op")

    def test_a_method_other_than_post_is_405(self):
        for method in ("GET", "PUT", "DELETE"):
            reply = once(self.api, method, self.api.prefix + "ping")
            self.error(reply, 405, "bad_frame")
            self.assertEqual(reply.headers.get("Allow"), "POST", str(reply))

    def test_a_body_over_256_kib_is_413(self):
        # A publish whose whole body is one byte over the frame limit.
        head = b'{"room": "general", "user": "ann", "cmid": "big", "body": "'
        raw = head + b"x" * (MAX_BODY + 1 - len(head) - 2) + b'"}'
        self.assertEqual(len(raw), MAX_BODY + 1)
        api = self.api.fresh()
        try:
            try:
                reply = api.post("publish", raw=raw)
            except (BrokenPipeError, ConnectionResetError) as e:
                self.fail("the node dropped the connection instead of answering 413: %r" % e)
            self.documented("publish", reply)
            self.error(reply, 413, "too_large")
        finally:
            api.close()
        # A field over its limit: a body of 64 KiB + 1.
        self.call("create_room", {"room": "large", "user": "ann"})
        self.call("publish", {"room": "large", "user": "ann", "cmid": "b", "body": "y" * (64 * 1024 + 1)}, 413,
                  "too_large")
        self.assertEqual(self.call("last_seq", {"room": "large"})["seq"], 0)

    def test_a_room_that_does_not_exist_is_404_and_a_non_member_403(self):
        self.call("history", {"room": "nowhere"}, 404, "no_such_room")
        self.call("publish", {"room": "nowhere", "user": "ann", "cmid": "x", "body": "lost"}, 404, "no_such_room")
        self.call("create_room", {"room": "members-only", "user": "ann"})
        self.call("publish", {"room": "members-only", "user": "zed", "cmid": "x", "body": "hi"}, 403, "not_member")
        # Acting `as` a user who is not the one joining.
        self.call("join", {"room": "members-only", "user": "cy", "as": "bob"}, 403, "forbidden")
        # Management by a non-owner, or of a room that is not there: refused, nothing stored.
        self.call("ban", {"room": "members-only", "user": "ann", "as": "zed"}, 403, "forbidden")
        self.call("unban", {"room": "members-only", "user": "ann", "as": "zed"}, 403, "forbidden")
        self.call("ban", {"room": "nowhere", "user": "ann"}, 404, "no_such_room")
        self.error(self.api.post("ban", {"room": "members-only"}), 400, "bad_field")
        self.assertEqual(self.call("members", {"room": "members-only"})["members"], ["ann"])
        self.assertFalse(self.call("unban", {"room": "members-only", "user": "ann"})["unbanned"], "never banned")
        self.assertEqual(self.call("last_seq", {"room": "members-only"})["seq"], 0)


class Grants(ApiTest):
    """A node of a topology file with API keys in `[security]` and in two grants."""

    start_node = False
    FULL = "full-" + secrets.token_hex(20)
    WRITER = "writer-" + secrets.token_hex(20)
    READER = "reader-" + secrets.token_hex(20)

    @classmethod
    def setUpClass(cls):
        port = free_port()

        def args(d):
            topology = os.path.join(d, "topology.toml")
            with open(topology, "w") as f:
                f.write('[nodes.a]\nclient = "tcp://127.0.0.1:*"\napi = "127.0.0.1:%d"\ndata = "%s"\n'
                        'durability = "nosync"\n\n[limits]\npublish_per_s = 0\nrequests_per_s = 0\n\n'
                        '[security]\ncurve = false\napi_keys = ["%s"]\n\n'
                        '[security.grants.ops-writer]\napi_keys = ["%s"]\nrooms = ["ops-*"]\nops = "write"\n\n'
                        '[security.grants.ops-reader]\napi_keys = ["%s"]\nrooms = ["ops-*"]\nops = "read"\n'
                        % (port, os.path.join(d, "store"), cls.FULL, cls.WRITER, cls.READER))
            return ["--config", topology, "--node", "a"]

        cls.node = Node(args, store="store")
        try:
            assert cls.node.api_url == "http://127.0.0.1:%d/api/v1/" % port, cls.node.ready
            cls.full = Api(cls.node.api_url, cls.FULL)
            cls.writer = Api(cls.node.api_url, cls.WRITER)
            cls.reader = Api(cls.node.api_url, cls.READER)
            cls.own = Api(cls.node.api_url, cls.node.key())
        except BaseException:
            cls.node.stop()
            raise

    @classmethod
    def tearDownClass(cls):
        for api in (cls.full, cls.writer, cls.reader, cls.own):
            api.close()
        code = cls.node.stop()
        assert code == 0, "the node exited with %s:\n%s" % (code, cls.node.log[-3000:])

    def test_a_grant_key_does_what_its_grant_allows(self):
        self.call("create_room", {"room": "general", "user": "ann"}, api=self.full)
        self.call("publish", {"room": "general", "user": "ann", "cmid": "g1", "body": "hi"}, api=self.own)
        self.call("create_room", {"room": "ops-deploy", "user": "deploy-bot"}, api=self.writer)
        ack = self.call("publish", {"room": "ops-deploy", "user": "deploy-bot", "cmid": "d1", "body": "deployed"},
                        api=self.writer)
        self.assertEqual(ack["seq"], 1)
        page = self.call("history", {"room": "ops-deploy"}, api=self.reader)
        self.assertEqual([m["body"] for m in page["messages"]], ["deployed"])

        # A room outside the grant's rooms.
        refused = self.call("publish", {"room": "general", "user": "ann", "cmid": "w1", "body": "no"}, 403,
                            "forbidden", api=self.writer)
        self.assertIn("ops-writer", refused["message"])
        refused = self.call("history", {"room": "general"}, 403, "forbidden", api=self.reader)
        self.assertIn("ops-reader", refused["message"])
        # A read grant publishing, in its own rooms.
        refused = self.call("publish", {"room": "ops-deploy", "user": "deploy-bot", "cmid": "r1", "body": "no"},
                            403, "forbidden", api=self.reader)
        self.assertIn("ops-reader", refused["message"])
        # Listing every room is about rooms outside the grant's.
        self.call("rooms", {}, 403, "forbidden", api=self.writer)
        # The body's fields are read before the grant is looked at.
        reply = self.reader.post("publish", {"room": "general", "user": "ann", "body": "no cmid"})
        self.documented("publish", reply)
        self.error(reply, 400, "bad_field")
        # Nothing of the refused requests was stored.
        self.assertEqual(self.call("last_seq", {"room": "general"}, api=self.full)["seq"], 1)
        self.assertEqual(self.call("last_seq", {"room": "ops-deploy"}, api=self.full)["seq"], 1)

    def test_keys_of_no_table_are_401(self):
        reply = self.full.post("ping", key="unknown-" + secrets.token_hex(20))
        self.documented("ping", reply)
        self.error(reply, 401, "unauthenticated")
        self.assertTrue(reply.headers.get("WWW-Authenticate", "").startswith("Bearer"), str(reply))


class Tls(ApiTest):
    """A node with the bridge's certificate serves the API over https:// only."""

    start_node = False

    def setUp(self):
        self.certs = tempfile.mkdtemp(prefix="switchboard-api-tls-")
        self.addCleanup(shutil.rmtree, self.certs, True)
        self.cert, key = os.path.join(self.certs, "cert.pem"), os.path.join(self.certs, "key.pem")
        made = subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                               "-nodes", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                               "-days", "1", "-keyout", key, "-out", self.cert],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=WAIT)
        self.assertEqual(made.returncode, 0, made.stdout)
        self.node = Node(lambda d: default_args(d, bridge=("--bridge", "127.0.0.1:*", "--bridge-cert", self.cert,
                                                            "--bridge-key", key)))

    def tearDown(self):
        code = self.node.stop()
        self.assertEqual(code, 0, "the node exited with %s:\n%s" % (code, self.node.log[-3000:]))

    def test_https_with_the_certificate_and_no_plain_http(self):
        self.assertTrue(self.node.api_url.startswith("https://127.0.0.1:"), self.node.ready)
        api = Api(self.node.api_url, self.node.key(), cafile=self.cert)
        try:
            self.assertEqual(self.call("ping", {}, api=api), {"op": "ping"})
            self.call("create_room", {"room": "secure", "user": "ann"}, api=api)
            self.assertEqual(self.call("publish", {"room": "secure", "user": "ann", "cmid": "s", "body": "hi"},
                                       api=api)["seq"], 1)
            self.assertIn(api.conn.sock.version(), ("TLSv1.2", "TLSv1.3"))
        finally:
            api.close()
        parts = urllib.parse.urlsplit(self.node.api_url)
        plain = http.client.HTTPConnection(parts.hostname, parts.port, timeout=WAIT)
        try:
            plain.request("POST", parts.path + "ping", b"{}", {"Authorization": "Bearer " + self.node.key()})
            response = plain.getresponse()
            self.fail("plain http was answered on the https port: %d %s" % (response.status, response.read()[:300]))
        except (http.client.HTTPException, OSError):
            pass  # the connection fails at the TLS handshake
        finally:
            plain.close()


if __name__ == "__main__":
    BINARY = sys.argv.pop(1)
    SOURCE_DIR = sys.argv.pop(1)
    unittest.main()
