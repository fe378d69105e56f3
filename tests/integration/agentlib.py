"""guestabid for the integration tests: start an agent on a scratch directory with this build's
back-ends, and talk JSON-RPC to it over its socket (standard library only)."""

import json
import os
import socket
import subprocess
import time

import vmlib


class CheckFailed(Exception):
    pass


def check(cond, msg):
    """An explicit check (bare assert statements vanish under python -O)."""
    if not cond:
        raise CheckFailed(msg)


class Client:
    """One connection: requests answered in order, notifications kept aside."""

    def __init__(self, path, timeout=30):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.sock.connect(path)
        self.buf = b""
        self.notes = []
        self.next_id = 1

    def send_raw(self, data):
        self.sock.sendall(data)

    def read_line(self):
        while b"\n" not in self.buf:
            chunk = self.sock.recv(1 << 16)
            if not chunk:
                raise EOFError("the agent closed the connection")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return json.loads(line)

    def read_reply(self):
        """The next reply (notifications that arrive meanwhile are kept in .notes)."""
        while True:
            msg = self.read_line()
            if isinstance(msg, dict) and "method" in msg and "id" not in msg:
                self.notes.append(msg)
                continue
            return msg

    def call_raw(self, method, params=None):
        req = {"jsonrpc": "2.0", "id": self.next_id, "method": method}
        self.next_id += 1
        if params is not None:
            req["params"] = params
        self.send_raw(json.dumps(req).encode() + b"\n")
        reply = self.read_reply()
        check(reply.get("id") == req["id"], "reply to %s has id %r" % (method, reply.get("id")))
        return reply

    def call(self, method, params=None):
        """The result, or raise with the error."""
        reply = self.call_raw(method, params)
        if "error" in reply:
            raise RuntimeError("%s: %s" % (method, json.dumps(reply["error"])))
        return reply["result"]

    def error(self, method, params=None):
        """The error object of a call that must fail."""
        reply = self.call_raw(method, params)
        check("error" in reply, "%s %s was expected to fail: %s" % (method, params, reply))
        return reply["error"]

    def wait_note(self, pred, timeout, what):
        deadline = time.monotonic() + timeout
        while True:
            for n in self.notes:
                if pred(n):
                    self.notes.remove(n)
                    return n
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("no notification: " + what)
            self.sock.settimeout(left)
            try:
                self.notes.append(self.read_line())
            except socket.timeout:
                pass
            finally:
                self.sock.settimeout(30)

    def drain(self, quiet=0.3):
        """Forget the notifications so far (those arriving within `quiet` seconds too)."""
        try:
            self.wait_note(lambda n: False, quiet, "nothing")
        except TimeoutError:
            pass
        self.notes.clear()

    def close(self):
        self.sock.close()


class Agent:
    """guestabid on a scratch directory: socket, state dir, run dir."""

    def __init__(self, workdir, name="guestabid", extra=(), state_dir=None, env=None):
        self.name = name
        self.dir = workdir
        self.socket = os.path.join(workdir, name + ".sock")
        self.state_dir = state_dir or os.path.join(workdir, name + "-state")
        self.run_dir = os.path.join(workdir, name + "-run")
        self.exe = vmlib.build_bin("src/agent/guestabid")
        self.argv = [self.exe, "--socket", self.socket, "--state-dir", self.state_dir,
                     "--run-dir", self.run_dir,
                     "--backend-dir", os.path.join(vmlib.BUILD_ROOT, "devices/net"),
                     "--backend-dir", os.path.join(vmlib.BUILD_ROOT, "devices/blk"),
                     "--poll-ms", "100"] + list(extra)
        self.log_path = os.path.join(workdir, name + ".log")
        self.proc = None
        self.env = env
        self.start()

    def start(self, timeout=30):
        r, w = os.pipe()
        self.logf = open(self.log_path, "a")
        self.proc = subprocess.Popen(self.argv + ["--ready-fd", str(w)], pass_fds=(w,),
                                     stdin=subprocess.DEVNULL, stdout=self.logf,
                                     stderr=subprocess.STDOUT, env=self.env)
        os.close(w)
        got = b""
        deadline = time.monotonic() + timeout
        while b"\n" not in got and time.monotonic() < deadline:
            chunk = os.read(r, 16)
            if not chunk:
                break
            got += chunk
        os.close(r)
        if got != b"READY\n":
            raise RuntimeError("%s did not get ready:\n%s" % (self.name, self.output()))

    def client(self, timeout=30):
        return Client(self.socket, timeout)

    def call(self, method, params=None):
        c = self.client()
        try:
            return c.call(method, params)
        finally:
            c.close()

    def output(self):
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def kill9(self):
        self.proc.kill()
        self.proc.wait()
        self.logf.close()

    def stop(self):
        if self.alive():
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if not self.logf.closed:
            self.logf.close()
        return self.proc.returncode


def children_of(pid):
    """The pids of the processes whose parent is pid."""
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % d) as f:
                fields = f.read().rsplit(")", 1)[1].split()
            if int(fields[1]) == pid:
                out.append(int(d))
        except (FileNotFoundError, ProcessLookupError, IndexError):
            pass
    return out


def cmdline(pid):
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            return f.read().split(b"\0")
    except (FileNotFoundError, ProcessLookupError):
        return []  # it went away meanwhile
