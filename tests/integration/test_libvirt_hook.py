#!/usr/bin/env python3
"""guestabi-libvirt-hook run as libvirt runs it (argv DOMAIN OPERATION SUB-OPERATION -, the XML
on stdin), against a scripted agent on a unix socket that records every request and answers as
told: what the hook asks, what it prints, how it exits, per operation and per failure. No
libvirt and no root needed (test_libvirt.py has the real thing)."""

import grp
import json
import os
import pwd
import socket
import subprocess
import tempfile
import threading
import time

import vmlib
from libvirtlib import check

V1 = "upstream.guestabi-net.v1"


class FakeAgent:
    """Answers each method with answers[method] (a function of params giving ("result", x) or
    ("error", {...})); records (method, params)."""

    def __init__(self, path, answers):
        self.path = path
        self.answers = answers
        self.calls = []
        self.srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.srv.bind(path)
        self.srv.listen(8)
        self.srv.settimeout(0.1)
        self.stop_ev = threading.Event()
        self.t = threading.Thread(target=self.loop)
        self.t.start()

    def loop(self):
        while not self.stop_ev.is_set():
            try:
                c, _ = self.srv.accept()
            except socket.timeout:
                continue
            with c:
                c.settimeout(5)
                buf = b""
                try:
                    while True:
                        chunk = c.recv(65536)
                        if not chunk:
                            break
                        buf += chunk
                        while b"\n" in buf:
                            line, buf = buf.split(b"\n", 1)
                            req = json.loads(line)
                            self.calls.append((req["method"], req.get("params")))
                            kind, val = self.answers[req["method"]](req.get("params"))
                            c.sendall(json.dumps({"jsonrpc": "2.0", "id": req["id"],
                                                  kind: val}).encode() + b"\n")
                except (socket.timeout, OSError):
                    pass

    def stop(self):
        self.stop_ev.set()
        self.t.join()
        self.srv.close()


def domain(d, pinned=True, extra_dev=""):
    pin = ("<metadata><guestabi:pin xmlns:guestabi='urn:guestabi:pin:1'>"
           "<guestabi:device id='net0' alias='ua-net0' class='virtio-net' mode='%s'/>"
           "<guestabi:device id='net1' alias='ua-net1' class='virtio-net' mode='%s'/>"
           "</guestabi:pin></metadata>" % (V1, V1)) if pinned else ""
    return ("<domain type='qemu'><name>vm1</name><uuid>11111111-2222-3333-4444-555555555555"
            "</uuid>%s<devices>"
            "<interface type='vhostuser'><source type='unix' path='%s/n0.sock' mode='client'/>"
            "<alias name='ua-net0'/></interface>"
            "<interface type='vhostuser'><source type='unix' path='%s/n1.sock' mode='client'/>"
            "<alias name='ua-net1'/></interface>%s</devices></domain>" % (pin, d, d, extra_dev))


def run(hook, conf, op, sub, xml):
    t0 = time.monotonic()
    r = subprocess.run([hook, "vm1", op, sub, "-"], input=xml, capture_output=True, text=True,
                       env={"PATH": "/usr/bin:/bin", "GUESTABI_CONF": conf}, timeout=30)
    return r.returncode, r.stdout, r.stderr, time.monotonic() - t0


def main():
    hook = vmlib.build_bin("src/libvirt-hook/guestabi-libvirt-hook")
    d = tempfile.mkdtemp(prefix="gabi-hook-")
    me = pwd.getpwuid(os.getuid()).pw_name
    conf = os.path.join(d, "guestabi.conf")
    sock = os.path.join(d, "agent.sock")
    with open(conf, "w") as f:
        f.write("# the hook's own configuration\nagent_socket = %s\ntimeout_ms = 2000\n"
                "qemu_user = %s\nnet_backing = tap:t-{domain}-{id}\nother_program_key = 1\n"
                % (sock, me))
    exists = set()

    def port_add(p):
        open(p["socket"], "w").close()  # the back-end's socket
        if p["id"] in exists:
            return "error", {"code": -32001, "message": "exists",
                             "data": {"errno": 17, "path": "params.id",
                                      "reason": "port %s exists" % p["id"]}}
        exists.add(p["id"])
        return "result", {"id": p["id"]}

    def port_del(p):
        if p["id"] not in exists:
            return "error", {"code": -32000, "message": "not found",
                             "data": {"path": "params.id", "reason": "no port " + p["id"]}}
        exists.discard(p["id"])
        return "result", {"id": p["id"], "deleted": True}

    verdict = {"ok": True}
    answers = {
        "abi.check": lambda p: ("result", {"schema": "guestabi.verdict/1",
                                           "operation": "check", "host": "hostB",
                                           "choices": [], "ok": verdict["ok"],
                                           "reasons": verdict.get("reasons", [])}),
        "port.add": port_add,
        "port.del": port_del,
    }
    agent = FakeAgent(sock, answers)
    try:
        # migrate begin, accepted: one abi.check with the pin as a guestabi.pin/1 document
        st, out, err, _ = run(hook, conf, "migrate", "begin", domain(d))
        check(st == 0 and out == "" and err == "", "accepted: %d %r %r" % (st, out, err))
        m, p = agent.calls[-1]
        check(m == "abi.check" and p["pin"]["schema"] == "guestabi.pin/1" and
              p["pin"]["vm"] == "vm1" and [x["mode"] for x in p["pin"]["devices"]] == [V1, V1],
              "abi.check params: %s" % p)

        # migrate begin, refused: exit 1, every reason in one paragraph, nothing on stdout
        verdict.update(ok=False, reasons=[
            {"device": "net0", "key": "mode", "message": "device net0 needs X"},
            {"device": "", "key": "platform", "message": "platform P needs Y"}])
        st, out, err, _ = run(hook, conf, "migrate", "begin", domain(d))
        check(st == 1 and out == "" and err.count("\n") == 1, "refused: %d %r %r" % (st, out, err))
        for part in ("host hostB cannot run VM vm1 as pinned (2 reasons)",
                     "[net0 mode] device net0 needs X; [platform] platform P needs Y"):
            check(part in err, "the refusal lacks %r: %r" % (part, err))
        verdict.update(ok=True, reasons=[])

        # prepare begin: a port per pinned vhost-user interface, in its mode, at its socket,
        # with the configured backing
        n = len(agent.calls)
        st, out, err, _ = run(hook, conf, "prepare", "begin", domain(d))
        check(st == 0 and out == "" and err == "", "prepare: %d %r %r" % (st, out, err))
        adds = [p for m, p in agent.calls[n:] if m == "port.add"]
        check([(a["id"], a["socket"], a["mode"], a["backing"]) for a in adds] == [
            ("lv-11111111-2222-3333-4444-555555555555-net0", d + "/n0.sock", V1,
             {"tap": "t-vm1-net0"}),
            ("lv-11111111-2222-3333-4444-555555555555-net1", d + "/n1.sock", V1,
             {"tap": "t-vm1-net1"})], "port.add params: %s" % adds)
        # the agent gives the socket to QEMU's user each time its back-end listens
        mine = grp.getgrgid(pwd.getpwnam(me).pw_gid).gr_name
        check(all(a.get("access") == {"user": me, "group": mine, "mode": "0660"} for a in adds),
              "port.add access: %s" % [a.get("access") for a in adds])

        # prepare again (a leftover port of the same id): replaced, not refused
        n = len(agent.calls)
        st, out, err, _ = run(hook, conf, "prepare", "begin", domain(d))
        check(st == 0, "prepare over leftovers: %d %r" % (st, err))
        check([m for m, _ in agent.calls[n:]] == ["port.add", "port.del", "port.add"] * 2,
              "leftover handling: %s" % agent.calls[n:])

        # release end: both deleted; a second release finds none and stays quiet
        st, out, err, _ = run(hook, conf, "release", "end", domain(d))
        check(st == 0 and err == "" and not exists, "release: %d %r %s" % (st, err, exists))
        st, out, err, _ = run(hook, conf, "release", "end", domain(d))
        check(st == 0 and err == "", "second release: %d %r" % (st, err))

        # a port that cannot be created refuses the start, and the ports made are deleted
        answers["port.add"] = lambda p: port_add(p) if p["id"].endswith("net0") else (
            "error", {"code": -32002, "message": "unsupported",
                      "data": {"path": "params.mode", "reason": "this host's back-end cannot "
                               "run " + p["mode"]}})
        st, out, err, _ = run(hook, conf, "prepare", "begin", domain(d))
        check(st == 1 and "cannot run %s" % V1 in err and "refusing the start" in err,
              "failed prepare: %d %r" % (st, err))
        check(not exists, "the port made before the failure was left: %s" % exists)
        answers["port.add"] = port_add

        # other operations and unpinned domains: untouched, the agent not asked
        n = len(agent.calls)
        for op, sub, xml in (("start", "begin", domain(d)), ("started", "begin", domain(d)),
                             ("reconnect", "begin", domain(d)),
                             ("migrate", "begin", domain(d, False)),
                             ("prepare", "begin", domain(d, False))):
            st, out, err, _ = run(hook, conf, op, sub, xml)
            check(st == 0 and out == "" and err == "", "%s %s: %d %r" % (op, sub, st, err))
        check(len(agent.calls) == n, "the agent was asked: %s" % agent.calls[n:])

        # a bad pin is refused with its place; a bad configuration too
        bad = domain(d).replace("alias='ua-net1' class", "alias='ua-none' class")
        st, out, err, _ = run(hook, conf, "migrate", "begin", bad)
        check(st == 1 and 'names alias "ua-none"' in err, "bad pin: %d %r" % (st, err))
        bad_conf = os.path.join(d, "bad.conf")
        with open(bad_conf, "w") as f:
            f.write("timeout_ms = soon\n")
        st, out, err, _ = run(hook, bad_conf, "migrate", "begin", domain(d))
        check(st == 1 and "bad.conf:1" in err and "timeout_ms" in err,
              "bad configuration: %d %r" % (st, err))

        # no agent: a pinned domain is refused (fail closed); a hung one after timeout_ms
        agent.stop()
        os.unlink(sock)
        st, out, err, _ = run(hook, conf, "migrate", "begin", domain(d))
        check(st == 1 and "No such file or directory" in err, "no agent: %d %r" % (st, err))
        hung = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        hung.bind(sock)
        hung.listen(8)  # accepts (the kernel's backlog), never answers
        st, out, err, secs = run(hook, conf, "prepare", "begin", domain(d))
        hung.close()
        check(st == 1 and "did not answer in time" in err and 1.9 < secs < 4,
              "hung agent: %d after %.2fs %r" % (st, secs, err))
        vmlib.log("ok: migrate begin accept/refuse, prepare (ports, leftovers, failure with "
                  "cleanup), release, untouched operations, bad pin and configuration, no "
                  "agent, hung agent refused after %.2fs" % secs)
    finally:
        agent.stop()
        subprocess.run(["rm", "-rf", d])


if __name__ == "__main__":
    main()
