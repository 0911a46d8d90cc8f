#!/usr/bin/python3
"""`switchboard chat` as people use it: real `switchboard run` and `switchboard chat`
processes, each chat in its own pseudo-terminal (the pty module), its screen read with a
terminal emulator (Debian's python3-pyte) as well as byte by byte.

Usage: chat_terminal_test.py SWITCHBOARD_BINARY [unittest args]

Checked: a message that arrives while a line is half typed is printed above it, and the
half line is drawn again, intact (and is what gets sent); one's own line shows once, from
the room; typing reaches the others' status line; a node killed with SIGKILL and started
again on the same data and endpoints is reconnected to without the chat exiting, a line
typed while it was down is delivered once, and nothing is shown twice or skipped. Piped
input works line by line without the editor.

Every wait is on output (a pattern in what a chat printed, a screen state, a ready line)
with a deadline; nothing sleeps in place of synchronisation.
"""
import fcntl
import os
import pty
import re
import select
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import termios
import time
import unittest

import pyte

BINARY = None
WAIT = 20.0  # seconds any one expected event may take on a loaded 2-core box
ROWS, COLS = 60, 120


class Node:
    """A `switchboard run` process on `data`; ready once it prints its ready line."""

    def __init__(self, data, endpoints=None):
        self.data = data
        if endpoints is None:
            where = ["--listen", "tcp://127.0.0.1:*"]
        else:  # the same endpoints again, after a restart
            where = ["--listen", endpoints["client"], "--publish", endpoints["pub"],
                     "--presence", endpoints["presence"], "--presence-pub", endpoints["presence_pub"]]
        self.log = open(os.path.join(data, "node.log"), "a")
        self.proc = subprocess.Popen(
            [BINARY, "run", "--data", data, "--durability", "nosync", "--bridge", "off", "--metrics", "off", *where],
            stdout=subprocess.PIPE, stderr=self.log, text=True)
        line = ""
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line or line.startswith("switchboard ready "):
                break
        if not line.startswith("switchboard ready "):
            self.kill()
            raise RuntimeError("the node did not become ready; it printed: " + line)
        self.endpoints = dict(re.findall(r"(\w+)=(\S+)", line))

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.proc.stdout.close()
        self.log.close()

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(WAIT)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc.stdout.close()
        self.log.close()
        return self.proc.returncode


class Chat:
    """`switchboard chat` for `user` in a pseudo-terminal of ROWS x COLS. `out` is every
    byte it wrote; `screen` is what a terminal shows of them."""

    def __init__(self, node, user, home):
        pid, fd = pty.fork()
        if pid == 0:  # the child: its stdin, stdout and stderr are the terminal
            try:
                fcntl.ioctl(0, termios.TIOCSWINSZ, struct.pack("HHHH", ROWS, COLS, 0, 0))
                env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "TERM": "xterm", "HOME": home}
                os.execve(BINARY, [BINARY, "chat", "--room", "general", "--user", user,
                                   "--connect", node.endpoints["client"], "--keys", os.path.join(node.data, "keys")],
                          env)
            finally:
                os._exit(127)
        self.user, self.pid, self.fd = user, pid, fd
        self.out = b""
        self.screen = pyte.Screen(COLS, ROWS)
        self.stream = pyte.ByteStream(self.screen)
        self.ended = False  # all it wrote is read: the terminal closed
        self.status = None  # its exit status, once it exited

    def read(self):
        try:
            data = os.read(self.fd, 65536)
        except OSError:  # EIO: the chat exited, and what it wrote has been read
            data = b""
        if not data:
            self.ended = True
            if self.status is None:  # the terminal closes as the process exits: reap it
                self.status = os.waitstatus_to_exitcode(os.waitpid(self.pid, 0)[1])
            return
        self.out += data
        self.stream.feed(data)

    def running(self):
        if self.status is None:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.status = os.waitstatus_to_exitcode(status)
        return self.status is None

    def type(self, text):
        os.write(self.fd, text.encode())

    def lines(self):
        return [row.rstrip() for row in self.screen.display]

    def cursor_row(self):
        return self.lines()[self.screen.cursor.y]

    def count(self, pattern):
        return len(re.findall(pattern.encode(), self.out))

    def close(self):
        if self.running():
            os.kill(self.pid, signal.SIGKILL)
            os.waitpid(self.pid, 0)
        os.close(self.fd)


def wait_for(chats, condition, what):
    """Reads every chat's output until `condition()` holds; fails after WAIT seconds."""
    deadline = time.monotonic() + WAIT
    while not condition():
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError("waited %.0f s for %s; the screens:\n%s" % (WAIT, what, "\n".join(
                "--- %s (exit %s)\n%s" % (c.user, c.status, "\n".join(l for l in c.lines() if l)) for c in chats)))
        open_fds = [c.fd for c in chats if not c.ended]
        if not open_fds:
            raise AssertionError("every chat ended before " + what)
        readable, _, _ = select.select(open_fds, [], [], min(left, 0.2))
        for c in chats:
            if c.fd in readable:
                c.read()


def shown(user, body):
    """The pattern of a room message as chat prints it: "[general #SEQ] USER: BODY"."""
    return r"\[general #\d+\] %s: %s" % (re.escape(user), re.escape(body))


class ChatTerminal(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="switchboard-chat-")
        self.home = os.path.join(self.dir, "home")  # no ~/.editrc of the developer's
        os.mkdir(self.home)
        self.data = os.path.join(self.dir, "data")
        os.mkdir(self.data)
        self.node = Node(self.data)
        self.chats = []

    def tearDown(self):
        for c in self.chats:
            c.close()
        self.node.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def chat(self, user):
        c = Chat(self.node, user, self.home)
        self.chats.append(c)
        wait_for(self.chats, lambda: b"Ctrl-D to leave" in c.out and c.cursor_row().startswith("general>"),
                 user + "'s prompt")
        return c

    def history(self):
        out = subprocess.run([BINARY, "history", "--room", "general", "--limit", "100", "--json",
                              "--connect", self.node.endpoints["client"], "--keys", os.path.join(self.data, "keys")],
                             capture_output=True, text=True, timeout=WAIT, check=True).stdout
        return [l for l in out.splitlines() if l]

    def test_typing_async_output_own_line_and_reconnect(self):
        ann = self.chat("ann")
        bob = self.chat("bob")
        chats = [ann, bob]

        # Ann half types a line: bob's status line says she is typing.
        ann.type("half a lin")
        wait_for(chats, lambda: ann.cursor_row() == "general> half a lin", "ann's half line")
        wait_for(chats, lambda: any("ann is typing" in l for l in bob.lines()), "bob to see ann typing")

        # Bob's message arrives while it is half typed: printed above it, and the half
        # line is drawn again after it, the cursor at its end.
        bob.type("hi ann\r")
        wait_for(chats, lambda: ann.count(shown("bob", "hi ann")) == 1, "bob's message at ann")
        wait_for(chats, lambda: ann.cursor_row() == "general> half a lin" and ann.screen.cursor.x == len(
            "general> half a lin"), "ann's half line drawn again")
        after = ann.out[ann.out.index(b"bob: hi ann"):]
        self.assertIn(b"general> half a lin", after, "the half line is drawn again after the message")
        rows = ann.lines()
        here = ann.screen.cursor.y
        self.assertTrue(any(re.fullmatch(shown("bob", "hi ann"), r) for r in rows[:here]),
                        "bob's message is above the line being typed:\n" + "\n".join(rows[:here + 1]))

        # The line as finished is what is sent; it shows once, as the room has it.
        ann.type("e\r")
        wait_for(chats, lambda: ann.count(shown("ann", "half a line")) == 1, "ann's own line at ann")
        wait_for(chats, lambda: bob.count(shown("ann", "half a line")) == 1, "ann's line at bob")
        wait_for(chats, lambda: not any("ann is typing" in l for l in bob.lines()),
                 "bob's typing indicator for ann to end with her message")
        wait_for(chats, lambda: ann.cursor_row() == "general>", "ann's editor to be empty after Enter")
        self.assertNotIn(b"general> half a line\r\n", ann.out, "the terminal did not echo the line")

        # The node dies (SIGKILL). Both chats say so, and stay.
        endpoints = self.node.endpoints
        self.node.kill()
        wait_for(chats, lambda: ann.count(r"connection lost, reconnecting") == 1 and
                 bob.count(r"connection lost, reconnecting") == 1, "both chats to see the node gone")
        self.assertTrue(ann.running() and bob.running(), "the chats are still running")

        # A line typed while it is down waits, shown as queued.
        ann.type("while down\r")
        wait_for(chats, lambda: any(re.fullmatch(r"\s*ann: while down\s+\(queued\)", l) for l in ann.lines()),
                 "ann's line queued")

        # And a line half typed stays as it is.
        ann.type("kept acr")
        wait_for(chats, lambda: ann.cursor_row() == "general> kept acr", "ann's half line while the node is down")

        # The node comes back on the same data and endpoints.
        self.node = Node(self.data, endpoints)
        wait_for(chats, lambda: ann.count(r"\* reconnected") == 1 and bob.count(r"\* reconnected") == 1,
                 "both chats to reconnect")
        wait_for(chats, lambda: ann.count(shown("ann", "while down")) == 1 and
                 bob.count(shown("ann", "while down")) == 1, "the queued line delivered")
        bob.type("after restart\r")
        wait_for(chats, lambda: ann.count(shown("bob", "after restart")) == 1, "bob's message after restart")
        wait_for(chats, lambda: ann.cursor_row() == "general> kept acr", "ann's half line kept across the restart")
        ann.type("oss\r")
        wait_for(chats, lambda: bob.count(shown("ann", "kept across")) == 1, "the line finished after the restart")
        self.assertEqual(ann.count(r"\* connection lost"), 1, "said once")

        # Leaving: Ctrl-D on an empty line, exit status 0.
        ann.type("\x04")
        bob.type("\x04")
        wait_for(chats, lambda: ann.ended and bob.ended, "both chats to exit")
        self.assertEqual((ann.status, bob.status), (0, 0))

        # Everything once, in order, at both; and stored once.
        bodies = [("bob", "hi ann"), ("ann", "half a line"), ("ann", "while down"), ("bob", "after restart"),
                  ("ann", "kept across")]
        for c in chats:
            seen = [(m.group(2), m.group(3), int(m.group(1))) for m in
                    re.finditer(rb"\[general #(\d+)\] (\w+): ([^\r\n]*)", c.out)]
            self.assertEqual([(u.encode(), b.encode()) for u, b in bodies], [(u, b) for u, b, _ in seen],
                             c.user + " saw each message once, in order")
            self.assertEqual([s for _, _, s in seen], list(range(1, len(bodies) + 1)), "gapless seqs")
        stored = self.history()
        self.assertEqual(len(stored), len(bodies), "\n".join(stored))
        self.assertEqual(sum('"body":"while down"' in l for l in stored), 1)

    def test_piped_lines(self):
        # No terminal: lines in, the conversation out, each own line once from the room.
        keys = ["--connect", self.node.endpoints["client"], "--keys", os.path.join(self.data, "keys")]
        done = subprocess.run([BINARY, "chat", "--room", "general", "--user", "carol", *keys],
                              input="one\n/status away lunch\ntwo", capture_output=True, text=True, timeout=WAIT)
        self.assertEqual(done.returncode, 0, done.stderr)
        lines = done.stdout.splitlines()
        self.assertEqual([l for l in lines if l.startswith("[")], ["[general #1] carol: one", "[general #2] carol: two"],
                         done.stdout)
        self.assertIn("you are away: lunch", done.stderr)
        self.assertNotIn("\x1b", done.stdout, "no terminal control without a terminal")


if __name__ == "__main__":
    BINARY = sys.argv[1]
    unittest.main(argv=[sys.argv[0]] + sys.argv[2:], verbosity=2)
