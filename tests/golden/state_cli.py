#!/usr/bin/env python3
"""guestabi state and negotiate as a user runs them, against two real guestabi-blk back-ends
(RAM disks): --json results with totals and rate, progress on a terminal only, a load's refusal
named by the front-end (type and version against the rule), a stream that is not one refused
before it is sent, and negotiate --json.

Usage: state_cli.py GUESTABI GUESTABI_BLK SOURCE_ROOT"""

import json
import os
import pty
import select
import subprocess
import sys
import tempfile
import time

guestabi, blk, root = sys.argv[1:4]
sys.path.insert(0, os.path.join(root, "tests", "fuzz"))
import gen_state_stream_corpus as stream_format  # noqa: E402  (the independent encoder)

ENV = dict(os.environ, GUESTABI_SYSTEM_CATALOG="")
failures = []


def check(cond, what):
    print("%s - %s" % ("ok" if cond else "not ok", what))
    if not cond:
        failures.append(what)


def run(*args):
    r = subprocess.run([guestabi] + list(args), capture_output=True, text=True, env=ENV,
                       timeout=60)
    return r.returncode, r.stdout, r.stderr


def run_on_tty(*args):
    """Runs with stdout on a pseudo-terminal: everything it wrote there, and its status."""
    master, slave = pty.openpty()
    p = subprocess.Popen([guestabi] + list(args), stdout=slave, stderr=subprocess.PIPE,
                         env=ENV)
    os.close(slave)
    out = b""
    while True:
        ready, _, _ = select.select([master], [], [], 60)
        if not ready:
            break
        try:
            chunk = os.read(master, 65536)
        except OSError:
            break
        if not chunk:
            break
        out += chunk
    os.close(master)
    # the terminal writes each newline as \r\n: what is left of \r is the program's own
    return p.wait(timeout=60), out.decode(errors="replace").replace("\r\n", "\n")


def backend(d, name, procs):
    sock = os.path.join(d, name + ".sock")
    log = open(os.path.join(d, name + ".log"), "w")
    p = subprocess.Popen([blk, "--socket", sock, "--ram", "32M"], stdout=log, stderr=log,
                         env=ENV)
    procs.append(p)
    for _ in range(200):
        if os.path.exists(sock):
            return sock
        time.sleep(0.05)
    raise SystemExit("%s's socket did not appear" % name)


def main():
    procs = []
    with tempfile.TemporaryDirectory() as d:
        try:
            a = backend(d, "a", procs)
            b = backend(d, "b", procs)
            saved = os.path.join(d, "a.stream")

            # --json: one document, totals and rate, nothing for a terminal
            st, out, err = run("state", "save", "--json", "--from", a, "--to", saved)
            check(st == 0, "save --json exits 0 (%s)" % err.strip())
            res = json.loads(out)
            size = os.path.getsize(saved)
            check(res["schema"] == "guestabi.state/1" and res["ok"], "save --json: ok result")
            check(res["bytes"] == size, "save --json: bytes %s = the file's %d" %
                  (res["bytes"], size))
            check(res["bytes_per_second"] > 0, "save --json: a rate")
            check(res["stream"]["device_type"] == "guestabi-blk" and
                  res["stream"]["payload_size"] == 32 << 20, "save --json: the stream's header")
            check("\r" not in out, "save --json: no progress line")

            # not a terminal: the result line only
            st, out, err = run("state", "load", "--from", saved, "--to", b)
            check(st == 0 and "CHECK_DEVICE_STATE: success" in out, "load exits 0")
            check("\r" not in out and out.count("\n") == 1, "load to a pipe: one line, no progress")

            # a terminal: progress (bytes of the total, rate, time left), then the result
            st, out = run_on_tty("state", "load", "--from", saved, "--to", b)
            check(st == 0, "load on a terminal exits 0")
            check("\r" in out and "32.0 MiB of 32.0 MiB (100%)" in out and "/s" in out and
                  "left" in out, "load on a terminal shows progress: %r" % out[:200])
            st, out = run_on_tty("state", "save", "--from", a, "--to", saved)
            check(st == 0 and "32.0 MiB of 32.0 MiB (100%)" in out,
                  "save on a terminal shows progress with the total from the header")
            st, out = run_on_tty("state", "move", "--json", "--from", a, "--to", b)
            check(st == 0 and "\r" not in out and json.loads(out)["ok"],
                  "move --json on a terminal: the document only")

            # refusals named by the front-end
            with open(saved, "rb") as f:
                data = f.read()
            payload, trailer = data[128:-16], data[-16:]
            newer = os.path.join(d, "v2.stream")
            with open(newer, "wb") as f:
                f.write(stream_format.header("guestabi-blk", "2", len(payload)) + payload + trailer)
            other = os.path.join(d, "net.stream")
            with open(other, "wb") as f:
                f.write(stream_format.header("guestabi-net", "1", len(payload)) + payload + trailer)
            junk = os.path.join(d, "junk.stream")
            with open(junk, "wb") as f:
                f.write(b"not a stream\n" * 20)

            st, out, err = run("state", "load", "--from", newer, "--to", b)
            check(st == 1 and "(refused)" in err and
                  "the stream holds guestabi-blk state version 2; guestabi-blk loads [1]" in err,
                  "a newer version: refused, version found and versions loaded named: " + err)
            st, out, err = run("state", "load", "--json", "--from", newer, "--to", b)
            res = json.loads(out)
            check(st == 1 and not res["ok"] and "version 2" in res["reason"] and
                  res["check"]["destination"]["outcome"] == "refused",
                  "load --json carries the reason and the back-end's answer")
            st, out, err = run("state", "load", "--from", other, "--to", b)
            check(st == 1 and "(wrong-type)" in err and "holds guestabi-net state" in err,
                  "another device type: named: " + err)
            st, out, err = run("state", "load", "--from", other, "--to", b, "--type",
                               "guestabi-blk")
            check(st == 1 and "is guestabi-blk (--type)" in err and "nothing was sent" in err,
                  "--type: another device type refused before sending: " + err)
            st, out, err = run("state", "load", "--from", newer, "--to", b, "--type",
                               "guestabi-blk")
            check(st == 1 and "nothing was sent" in err and "loads [1]" in err,
                  "--type: a version the rule does not load refused before sending: " + err)
            st, out, err = run("state", "load", "--from", junk, "--to", b)
            check(st == 1 and "bad-magic" in err and "nothing was sent" in err,
                  "not a stream: refused before sending: " + err)
            st, out, err = run("state", "load", "--json", "--from", junk, "--to", b)
            res = json.loads(out)
            check(st == 1 and res["stream"] is None and res["check"]["destination"] is None and
                  res["bytes"] == 0 and "nothing was sent" in res["error"]["message"],
                  "not a stream, --json: no header, no CHECK asked, the error")

            # negotiate --json
            st, out, err = run("negotiate", "--json", "--socket", b, "--mode",
                               "upstream.guestabi-blk.v1")
            res = json.loads(out) if out else {}
            check(st == 0 and res.get("schema") == "guestabi.negotiate/1" and res["accepted"] and
                  res["differences"] == [] and "VIRTIO_F_VERSION_1" in res["offer"]["features"],
                  "negotiate --json: offer, request, no difference (%s)" % err.strip())
            st, out, err = run("negotiate", "--json", "--socket", b, "--class", "virtio-blk",
                               "--queue-pairs", "64")
            res = json.loads(out) if out else {}
            check(st == 1 and not res["ok"] and
                  any(x["key"] == "max_queue_pairs" for x in res["differences"]),
                  "negotiate --json: a difference keyed max_queue_pairs")
        finally:
            for p in procs:
                p.terminate()
                p.wait()
    if failures:
        print("%d failed" % len(failures))
        sys.exit(1)


main()
