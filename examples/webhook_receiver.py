#!/usr/bin/python3
"""A webhook receiver for Switchboard (docs/WEBHOOKS.md): checks each request's
signature and timestamp, drops what it took already (an event by its id, a
notification's messages by their keys), and prints the rest: messages, membership,
room and presence events, notifications.

    python3 examples/webhook_receiver.py --port 8090 --secret SECRET

A real receiver would hand each event to its own work before answering 200 (a CRM, a
search index; for notifications, FCM, APNs or e-mail), and keep the ids and keys it
took in its own store rather than in memory.
"""
import argparse
import hashlib
import hmac
import http.server
import json
import sys
import threading
import time

MAX_SKEW_S = 300  # a request signed longer ago than this is a replay


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8090, help="0: any free port (the line on stderr says which)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--secret", required=True, help="the webhook's `secret` in the topology")
    args = parser.parse_args()
    secret = args.secret.encode()
    taken = set()
    lock = threading.Lock()  # requests come on threads of their own: one at a time past here

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *a):
            pass

        def answer(self, status, why=""):
            body = why.encode()
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            stamp = self.headers.get("X-Switchboard-Timestamp", "")
            signature = self.headers.get("X-Switchboard-Signature", "")
            expected = "v1=" + hmac.new(secret, stamp.encode() + b"." + body, hashlib.sha256).hexdigest()
            if not hmac.compare_digest(expected, signature):
                return self.answer(401, "bad signature")
            if not stamp.isdigit() or abs(time.time() - int(stamp)) > MAX_SKEW_S:
                return self.answer(401, "stale timestamp")
            parsed = json.loads(body)
            with lock:
                self.take(parsed)
            self.answer(200)

        def take(self, parsed):
            for event in parsed if isinstance(parsed, list) else [parsed]:
                if event["type"] == "notification":
                    # Each message a notification carries has a key of its own: one sent
                    # again after a restart or a failover is dropped here.
                    fresh = [m for m in event["messages"] if m["key"] not in taken]
                    taken.update(m["key"] for m in fresh)
                    if fresh:
                        last = fresh[-1]
                        print("notify %s: %d new in %s%s; last from %s: %s" % (
                            event["user"], len(fresh), event["room"],
                            " (mentioned)" if any(m["mentioned"] for m in fresh) else "", last["user"],
                            last["preview"]), flush=True)
                    continue
                if event["id"] in taken:
                    continue  # sent again after a restart or a failover: taken already
                taken.add(event["id"])
                if event["type"] == "message":
                    print("%s #%d %s: %s" % (event["room"], event["seq"], event["user"], event["body"]), flush=True)
                elif event["type"] == "membership":  # joined, added, left, removed, kicked, banned, ...
                    by = " by %s" % event["by"] if "by" in event else ""
                    print("%s: %s %s%s" % (event["room"], event["user"], event["event"], by), flush=True)
                elif event["type"] == "room":  # created, deleted, receipts, retention
                    print("%s: room %s" % (event["room"], event["event"]), flush=True)
                elif event["type"] == "presence":  # online, offline, status
                    print("%s is %s (%s%s)" % (event["user"], event["event"], event["status"],
                                               ": " + event["text"] if event["text"] else ""), flush=True)

    server = http.server.ThreadingHTTPServer((args.host, args.port), Handler)
    host, port = server.server_address[:2]
    print("receiving on http://%s:%d/" % (host, port), file=sys.stderr, flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
