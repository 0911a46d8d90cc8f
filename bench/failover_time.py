#!/usr/bin/python3
"""Failover time of a replicated shard with real processes (docs/REPLICATION.md,
"Measured"): three `switchboard run` nodes on loopback, one shard owned by a with
replicas b and c, ack = "replicated". Each round kills the shard's primary with
SIGKILL and publishes through another node's HTTP API (docs/API.md) until a publish is
acknowledged again; the time from the kill to that acknowledgement is the round's
figure. The killed node is started again and caught up before the next round.

    python3 bench/failover_time.py build/switchboard [--rounds 20] [--heartbeat-ms 1000] [--misses 3]

Prints each round and the median, 90th percentile and worst, in ms and in heartbeats.
"""
import argparse
import http.client
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

KEY = "failover-bench-key-0123456789abcdef"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Node:
    def __init__(self, binary, topology, name):
        self.binary, self.topology, self.name = binary, topology, name
        self.proc = None

    def start(self, log):
        self.proc = subprocess.Popen([self.binary, "run", "--config", self.topology, "--node", self.name],
                                     stdout=subprocess.PIPE, stderr=log, text=True)
        for line in self.proc.stdout:
            if line.startswith("switchboard ready "):
                self.api_port = int(re.search(r" api=http://127\.0\.0\.1:(\d+)/", line).group(1))
                break
        else:
            raise RuntimeError("node %s did not start" % self.name)
        self.conn = http.client.HTTPConnection("127.0.0.1", self.api_port, timeout=30)

    def call(self, op, body):
        """The reply's HTTP status and JSON; a connection the node dropped is made again."""
        for attempt in range(2):
            try:
                self.conn.request("POST", "/api/v1/" + op, json.dumps(body).encode(),
                                  {"Authorization": "Bearer " + KEY, "Content-Type": "application/json"})
                response = self.conn.getresponse()
                return response.status, json.loads(response.read())
            except (ConnectionError, http.client.HTTPException):
                self.conn.close()
                if attempt:
                    raise

    def kill(self):
        self.proc.kill()
        self.proc.wait()
        self.proc.stdout.close()
        self.conn.close()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("binary")
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--heartbeat-ms", type=int, default=1000)
    parser.add_argument("--misses", type=int, default=3)
    args = parser.parse_args()
    work = tempfile.mkdtemp(prefix="switchboard-failover-")
    topology = os.path.join(work, "topology.toml")
    with open(topology, "w") as f:
        f.write("[cluster]\nheartbeat_ms = %d\nmisses = %d\n\n" % (args.heartbeat_ms, args.misses))
        for n in "abc":
            f.write("[nodes.%s]\n" % n)
            for key in ("client", "publish", "presence", "presence_pub", "peer", "presence_peer"):
                f.write('%s = "tcp://127.0.0.1:%d"\n' % (key, free_port()))
            f.write('api = "127.0.0.1:*"\ndata = "%s"\n\n' % os.path.join(work, n))
        f.write('[[shards]]\nname = "s1"\nowner = "a"\nreplicas = ["b", "c"]\nack = "replicated"\n\n'
                '[limits]\npublish_per_s = 0\nrequests_per_s = 0\n\n[security]\ncurve = false\napi_keys = ["%s"]\n'
                % KEY)
    log = open(os.path.join(work, "nodes.log"), "w")
    nodes = {n: Node(args.binary, topology, n) for n in "abc"}
    try:
        for node in nodes.values():
            node.start(log)

        def shard(via):
            status, reply = via.call("shards", {})
            return next(s for s in reply["shards"] if s["name"] == "s1") if status == 200 else None

        def settled(via):
            """s1 has a primary that is up and every replica is up and caught up."""
            s = shard(via)
            return s and s["primary_up"] and all(r["up"] and r["lsn"] == s["lsn"] for r in s["replicas"])

        # A new shard starts once a majority of its members have reached each other
        # (docs/REPLICATION.md): until then writes are unavailable.
        while not settled(nodes["b"]):
            time.sleep(0.05)
        status, _ = nodes["b"].call("create_room", {"room": "bench", "user": "ann"})
        assert status == 200, status
        figures = []
        for round_ in range(1, args.rounds + 1):
            while not settled(nodes["b"]) or not settled(nodes["c"]):
                time.sleep(0.05)  # polling the nodes' own report of the shard
            primary = shard(nodes["b"])["primary"]
            through = nodes["c" if primary == "b" else "b"]
            status, _ = through.call("publish", {"room": "bench", "user": "ann", "body": "before", "cmid": "b%d" % round_})
            assert status == 200, status
            killed = time.monotonic()
            nodes[primary].kill()
            tries = 0
            while True:
                tries += 1
                status, reply = through.call("publish", {"room": "bench", "user": "ann", "body": "after",
                                                         "cmid": "a%d" % round_})
                if status == 200:
                    break
                if status != 503:
                    raise RuntimeError("publish through %s: %d %s" % (through.name, status, reply))
                time.sleep(0.005)
            took = (time.monotonic() - killed) * 1000
            figures.append(took)
            print("round %2d: primary %s killed, next publish acknowledged through %s after %7.1f ms "
                  "(%.1f heartbeats, %d tries)" % (round_, primary, through.name, took, took / args.heartbeat_ms, tries),
                  flush=True)
            nodes[primary].start(log)
        figures.sort()
        p = lambda q: figures[min(len(figures) - 1, int(q * len(figures)))]
        print("failover, %d rounds, heartbeat %d ms, misses %d: median %.0f ms (%.2f heartbeats), p90 %.0f ms "
              "(%.2f), worst %.0f ms (%.2f)" % (len(figures), args.heartbeat_ms, args.misses, statistics.median(figures),
                                               statistics.median(figures) / args.heartbeat_ms, p(0.9),
                                               p(0.9) / args.heartbeat_ms, figures[-1], figures[-1] / args.heartbeat_ms))
    finally:
        for node in nodes.values():
            if node.proc and node.proc.poll() is None:
                node.kill()
        log.close()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
