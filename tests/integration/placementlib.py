"""A real OpenStack Placement (Debian's python3-placement, 8.0) for tests and benchmarks:
standalone, SQLite in a scratch folder, noauth2, one server process on a free loopback port,
started and stopped by its PID (shared/reference/placement.md describes the recipe).

Only the standard library is used."""

import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request

HEADERS = {"x-auth-token": "admin", "OpenStack-API-Version": "placement 1.39",
           "Accept": "application/json"}


class CheckFailed(Exception):
    pass


def check(cond, what):
    """A test's assertion that stays on under python -O."""
    if not cond:
        raise CheckFailed(what)


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def available():
    """None when Placement can run here, else why not."""
    for prog in ("placement-api", "placement-manage"):
        if not shutil.which(prog):
            return "%s is not installed (tools/deps.sh test installs python3-placement)" % prog
    return None


class Placement:
    """Placement with its own SQLite file; `with Placement() as p:` starts and stops it."""

    def __init__(self, fast=False, workdir=None):
        self.fast = fast
        self.own_dir = workdir is None
        self.dir = workdir or tempfile.mkdtemp(prefix="guestabi-placement-")
        self.port = free_port()
        self.url = "http://127.0.0.1:%d" % self.port
        self.proc = None

    def __enter__(self):
        etc = os.path.join(self.dir, "etc")
        os.makedirs(etc, exist_ok=True)
        conf = os.path.join(etc, "placement.conf")
        with open(conf, "w") as f:
            f.write("[DEFAULT]\nuse_stderr = true\n[api]\nauth_strategy = noauth2\n"
                    "[placement_database]\nconnection = sqlite:///%s/p.db\n" % self.dir)
            if self.fast:
                f.write("sqlite_synchronous = false\n")
        env = dict(os.environ, OS_PLACEMENT_CONFIG_DIR=etc)
        subprocess.run(["placement-manage", "--config-file", conf, "db", "sync"], env=env,
                       check=True, capture_output=True, timeout=120)
        self.log = open(os.path.join(self.dir, "api.log"), "w")
        self.proc = subprocess.Popen(["placement-api", "--host", "127.0.0.1", "--port",
                                      str(self.port)], env=env, stdout=self.log,
                                     stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(self.url + "/", timeout=2).read()
                break
            except (urllib.error.URLError, ConnectionError, OSError):
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError("placement-api did not start; its log: %s" %
                                       open(os.path.join(self.dir, "api.log")).read()[-2000:])
                time.sleep(0.1)
        return self

    def stop(self):
        if self.proc and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.proc = None

    def __exit__(self, *exc):
        self.stop()
        self.log.close()
        if self.own_dir and not os.environ.get("GUESTABI_KEEP_TMP"):
            shutil.rmtree(self.dir, ignore_errors=True)

    def call(self, method, path, body=None, expect=(200,)):
        data = json.dumps(body).encode() if body is not None else None
        hdr = dict(HEADERS)
        if data is not None:
            hdr["Content-Type"] = "application/json"
        req = urllib.request.Request(self.url + path, data=data, headers=hdr, method=method)
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                status, text = r.status, r.read()
        except urllib.error.HTTPError as e:
            status, text = e.code, e.read()
        check(status in expect, "%s %s: %d %s" % (method, path, status, text[:500]))
        return json.loads(text) if text else None

    def provider(self, name):
        rps = self.call("GET", "/resource_providers?name=" + name)["resource_providers"]
        return rps[0] if rps else None

    def traits(self, uuid):
        return self.call("GET", "/resource_providers/%s/traits" % uuid)
