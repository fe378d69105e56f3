#!/usr/bin/env python3
"""docs/rpc.md's worked session, replayed against a live guestabid: every request line is sent
as written and every reply line must match what the document shows ("..." for any value, an
array ending in "..." may go on, members not shown may be present). Also: every method
rpc.methods lists has its section in docs/rpc.md and in guestabid.8, and the CLI's port
commands work against the same agent."""

import json
import os
import re
import subprocess

import agentlib
import vmlib
from agentlib import check


def matches(want, got, where="$"):
    """Raise when got does not match the documented want."""
    if want == "...":
        return
    if isinstance(want, dict):
        check(isinstance(got, dict), "%s: wanted an object, got %r" % (where, got))
        for k, v in want.items():
            check(k in got, "%s: no member %r in %r" % (where, k, got))
            matches(v, got[k], "%s.%s" % (where, k))
    elif isinstance(want, list):
        check(isinstance(got, list), "%s: wanted an array, got %r" % (where, got))
        open_ended = bool(want) and want[-1] == "..."
        items = want[:-1] if open_ended else want
        check(len(got) >= len(items) if open_ended else len(got) == len(items),
              "%s: %d entries, documented %d" % (where, len(got), len(items)))
        for i, v in enumerate(items):
            matches(v, got[i], "%s[%d]" % (where, i))
    else:
        check(want == got, "%s: documented %r, got %r" % (where, want, got))


def session(path):
    with open(path) as f:
        text = f.read()
    blocks = re.findall(r"```jsonrpc\n(.*?)```", text, re.S)
    check(len(blocks) == 1, "docs/rpc.md has %d jsonrpc blocks" % len(blocks))
    return text, [l for l in blocks[0].splitlines() if l.strip()]


def main():
    if os.geteuid() != 0:
        vmlib.skip("needs root (the agent probes taps)")
    doc, lines = session(os.path.join(vmlib.SOURCE_ROOT, "docs/rpc.md"))
    with open(os.path.join(vmlib.SOURCE_ROOT, "docs/guestabid.8")) as f:
        man = f.read()
    with vmlib.Scenario("agent-docs") as sc:
        agent = sc.add(agentlib.Agent(sc.dir))
        try:
            c = agent.client()
            n_sent = n_checked = 0
            for line in lines:
                line = line.replace("$DIR", sc.dir)
                if line.startswith("--> "):
                    c.send_raw(line[4:].encode() + b"\n")
                    n_sent += 1
                elif line.startswith("<-- "):
                    want = json.loads(line[4:])
                    got = c.read_line()
                    matches(want, got)
                    n_checked += 1
                else:
                    check(False, "docs/rpc.md session: a line that is neither --> nor <--: " +
                          line)
            check(n_sent >= 10 and n_checked >= n_sent, "session too short")
            vmlib.log("ok: docs/rpc.md's session: %d requests, %d lines as documented" %
                      (n_sent, n_checked))

            for m in c.call("rpc.methods")["methods"]:
                check("### %s " % m["name"] in doc, "docs/rpc.md lacks a section for " +
                      m["name"])
                check(m["name"] in man, "guestabid.8 does not name " + m["name"])
            vmlib.log("ok: every method is documented in docs/rpc.md and guestabid.8")

            g = vmlib.build_bin("src/cli/guestabi")
            env = dict(os.environ, GUESTABI_SYSTEM_CATALOG="", GUESTABI_AGENT=agent.socket)

            def cli(*args):
                r = subprocess.run([g] + list(args), capture_output=True, text=True, env=env,
                                   timeout=60)
                return r.returncode, r.stdout + r.stderr
            sock = os.path.join(sc.dir, "cli0.sock")
            st, out = cli("port", "add", "cli0", "--class", "virtio-net", "--socket", sock,
                          "--mode", "upstream.guestabi-net.v2", "--loopback")
            check(st == 0 and "upstream.guestabi-net.v2" in out and os.path.exists(sock), out)
            st, out = cli("port", "add", "cli0", "--class", "virtio-net", "--socket", sock,
                          "--loopback")
            check(st == 2 and "params.id" in out and "exists" in out, out)
            st, out = cli("--json", "port", "list")
            check(st == 0 and [p["id"] for p in json.loads(out)["ports"]] == ["cli0"], out)
            st, out = cli("port", "list")
            check(st == 0 and re.search(r"cli0\s+virtio-net\s+upstream.guestabi-net.v2", out),
                  out)
            st, out = cli("port", "show", "cli0")
            check(st == 0 and "back-end     running" in out, out)
            st, out = cli("host", "caps")
            check(st == 0 and "guestabi-net (virtio-net) runs" in out, out)
            pin = os.path.join(vmlib.SOURCE_ROOT, "docs/examples/vm-common.json")
            st, out = cli("check", "--pin", pin, "--host", "@agent")
            r = agent.call("abi.check", {"pin": json.load(open(pin))})
            check(st == (0 if r["ok"] else 1), "check --host @agent: %d, abi.check ok %s\n%s" %
                  (st, r["ok"], out))
            st, out = cli("port", "del", "cli0")
            check(st == 0 and not agent.call("port.list")["ports"], out)
            st, out = cli("--agent", os.path.join(sc.dir, "nothing.sock"), "port", "list")
            check(st == 2 and "cannot reach guestabid" in out, out)
            vmlib.log("ok: guestabi port add/list/show/del, host caps, check --host @agent")

            # systemd's readiness protocol (Type=notify): READY=1 on $NOTIFY_SOCKET
            import socket
            ns = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            ns.bind(os.path.join(sc.dir, "notify.sock"))
            ns.settimeout(30)
            na = agentlib.Agent(sc.dir, "notified", env=dict(
                os.environ, NOTIFY_SOCKET=os.path.join(sc.dir, "notify.sock")))
            try:
                msg = ns.recv(4096)
                check(msg == b"READY=1", "NOTIFY_SOCKET got %r" % msg)
                check(na.call("rpc.methods")["methods"], "the notified agent serves")
            finally:
                na.stop()
                ns.close()
            vmlib.log("ok: READY=1 on $NOTIFY_SOCKET")
        except Exception:
            print("--- agent log:\n" + agent.output()[-3000:])
            raise


if __name__ == "__main__":
    main()
