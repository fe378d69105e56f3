#!/usr/bin/env python3
"""guestabid's ports: two ports on one host in upstream.guestabi-net.v3 and .v1, each offering
exactly its own mode and refusing a front-end that asks for more (the refusal names the mode);
a back-end killed with SIGKILL is restarted and serves again while the other port's back-end
never notices; a hostile front-end breaks only its own port; events for all of it; port.del;
a back-end that cannot start leaves no row; and a restart of the agent (SIGTERM or SIGKILL)
brings every port back in its mode on its socket."""

import grp
import json
import os
import pwd
import signal
import socket
import sqlite3
import struct
import subprocess
import time

import agentlib
import vmlib
from agentlib import check

V1, V3 = "upstream.guestabi-net.v1", "upstream.guestabi-net.v3"


def negotiate(sock, mode):
    g = vmlib.build_bin("src/cli/guestabi")
    r = subprocess.run([g, "negotiate", "--socket", sock, "--mode", mode], capture_output=True,
                       text=True, env=dict(os.environ, GUESTABI_SYSTEM_CATALOG=""), timeout=30)
    return r.returncode, r.stdout + r.stderr


def db_rows(agent):
    db = sqlite3.connect(os.path.join(agent.state_dir, "guestabid.db"))
    try:
        return {r[0]: r[1:] for r in db.execute("SELECT id, class, socket, mode FROM ports")}
    finally:
        db.close()


# who may connect to the v1 port's socket (as libvirt's hook asks for QEMU's user)
ACCESS = {"user": "nobody", "group": "nogroup", "mode": "0660"}


def check_access(path, when):
    st = os.stat(path)
    want = (pwd.getpwnam(ACCESS["user"]).pw_uid, grp.getgrnam(ACCESS["group"]).gr_gid, 0o660)
    check((st.st_uid, st.st_gid, st.st_mode & 0o777) == want,
          "socket %s %s: uid %d gid %d mode %o, access asked %s" % (
              path, when, st.st_uid, st.st_gid, st.st_mode & 0o777, ACCESS))


def pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie is not alive
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError):
        return False


def port(agent, pid):
    return agent.call("port.get", {"id": pid})


def slow_backends(workdir):
    """Back-ends that take 1.5 s to listen: port.add is answered when they do, and meanwhile
    the agent answers everyone else at once; a port.del of a port still starting answers its
    port.add; in a batch, port.add is waited for."""
    slow = os.path.join(workdir, "slow")
    os.makedirs(slow)
    for name, sub in (("guestabi-net", "devices/net"), ("guestabi-blk", "devices/blk")):
        path = os.path.join(slow, name)
        with open(path, "w") as f:
            f.write('#!/bin/sh\ncase " $* " in *" --list-modes "*) ;; *) sleep 1.5;; esac\n'
                    'exec %s "$@"\n' % os.path.join(vmlib.BUILD_ROOT, sub, name))
        os.chmod(path, 0o755)
    agent = agentlib.Agent(workdir, "slowagent")
    agent.argv[agent.argv.index(os.path.join(vmlib.BUILD_ROOT, "devices/net"))] = slow
    agent.argv[agent.argv.index(os.path.join(vmlib.BUILD_ROOT, "devices/blk"))] = slow
    agent.stop()
    agent.start()
    try:
        a = agent.client()
        sock = os.path.join(workdir, "slow0.sock")
        t0 = time.monotonic()
        a.send_raw(json.dumps({"jsonrpc": "2.0", "id": 1, "method": "port.add", "params": {
            "id": "slow0", "class": "virtio-net", "socket": sock,
            "backing": {"loopback": True}}}).encode() + b"\n")
        time.sleep(0.2)
        t1 = time.monotonic()
        state = agent.call("port.get", {"id": "slow0"})["state"]
        waited = time.monotonic() - t1
        check(state == "starting" and waited < 0.5,
              "while a back-end starts: state %s, another client waited %.2fs" % (state, waited))
        r = a.read_reply()
        took = time.monotonic() - t0
        check(r.get("result", {}).get("state") == "running" and took >= 1.4 and
              os.path.exists(sock), "slow port.add: %s after %.2fs" % (r, took))
        # deleted while starting: its port.add says so
        a.send_raw(json.dumps({"jsonrpc": "2.0", "id": 2, "method": "port.add", "params": {
            "id": "slow1", "class": "virtio-net", "socket": os.path.join(workdir, "slow1.sock"),
            "backing": {"loopback": True}}}).encode() + b"\n")
        time.sleep(0.2)
        agent.call("port.del", {"id": "slow1"})
        r = a.read_reply()
        check(r["id"] == 2 and r["error"]["code"] == -32000 and "deleted" in
              r["error"]["data"]["reason"], "port.add of a port deleted meanwhile: %s" % r)
        check("slow1" not in db_rows(agent), "slow1 left in the database")
        # in a batch: waited for, answered in the batch's line
        a.send_raw(json.dumps([{"jsonrpc": "2.0", "id": 3, "method": "port.add", "params": {
            "id": "slow2", "class": "virtio-net", "socket": os.path.join(workdir, "slow2.sock"),
            "backing": {"loopback": True}}}, {"jsonrpc": "2.0", "id": 4,
                                              "method": "port.list"}]).encode() + b"\n")
        r = a.read_reply()
        check(isinstance(r, list) and r[0]["result"]["state"] == "running" and
              len(r[1]["result"]["ports"]) == 2, "batch with port.add: %s" % r)
        vmlib.log("ok: a back-end slow to start holds up only its own port.add (%.2fs; others "
                  "answered in %.3fs)" % (took, waited))
    finally:
        agent.stop()


def main():
    if os.geteuid() != 0:
        vmlib.skip("needs root (the agent probes taps)")
    with vmlib.Scenario("agent-ports") as sc:
        agent = sc.add(agentlib.Agent(sc.dir))
        try:
            run(agent, sc.dir)
            slow_backends(sc.dir)
        except Exception:
            print("--- agent log:\n" + agent.output()[-5000:])
            for f in sorted(os.listdir(agent.run_dir)):
                if f.endswith(".log"):
                    with open(os.path.join(agent.run_dir, f), errors="replace") as fh:
                        print("--- %s:\n%s" % (f, fh.read()[-1500:]))
            raise


def run(agent, workdir):
    ev = agent.client()
    check(ev.call("events.subscribe") == {"subscribed": True}, "events.subscribe")
    socks = {m: os.path.join(workdir, m + ".sock") for m in (V1, V3)}
    ids = {V3: "vm1-net0", V1: "vm2-net0"}
    for mode in (V3, V1):
        params = {"id": ids[mode], "class": "virtio-net", "socket": socks[mode], "mode": mode,
                  "backing": {"loopback": True}}
        if mode == V1:
            params["access"] = ACCESS
        p = agent.call("port.add", params)
        check(p["mode"] == mode and p["state"] == "running" and p["pid"], "port.add: %s" % p)
        check(os.path.exists(socks[mode]), "no socket after port.add answered")
        ev.wait_note(lambda n, i=ids[mode]: n["method"] == "port.added" and
                     n["params"]["id"] == i, 5, "port.added " + ids[mode])
    # the default mode is the newest this host runs
    newest = agent.call("modes.list", {"class": "virtio-net"})["default"]["virtio-net"]
    d = agent.call("port.add", {"id": "dflt", "class": "virtio-net",
                                "socket": os.path.join(workdir, "dflt.sock"),
                                "backing": {"loopback": True}})
    check(d["mode"] == newest, "default mode %s, newest %s" % (d["mode"], newest))
    agent.call("port.del", {"id": "dflt"})
    check(sorted(db_rows(agent)) == sorted(ids.values()), "db: %s" % db_rows(agent))
    check_access(socks[V1], "after port.add")
    check(port(agent, ids[V1])["access"] == ACCESS, "port.get access")
    c = agent.client()
    e = c.error("port.add", {"id": "x", "class": "virtio-net",
                             "socket": os.path.join(workdir, "x.sock"),
                             "backing": {"loopback": True},
                             "access": {"user": "no-such-user-here"}})
    c.close()
    check(e["code"] == -32602 and e["data"]["path"] == "params.access.user",
          "an unknown user: %s" % e)

    # each port offers exactly its mode
    st, out = negotiate(socks[V1], V3)
    check(st == 1 and "4 queue pairs asked, 1 offered" not in out and "offered" in out and
          "The back-end refused" in out, "v1 port took v3:\n" + out)
    # (negotiate connects several times: the refusal is the last of them)
    n = ev.wait_note(lambda n: n["method"] == "port.disconnected" and
                     n["params"]["id"] == ids[V1] and V1 in n["params"]["reason"], 10,
                     "a port.disconnected naming the mode for the refused front-end")
    p1 = port(agent, ids[V1])
    check(V1 in (p1["last_error"] or ""), "port.get last_error: %s" % p1)
    st, out = negotiate(socks[V1], V1)
    check(st == 0 and "accepted" in out, "v1 port refused v1:\n" + out)
    st, out = negotiate(socks[V3], V3)
    check(st == 0 and "Differences:\n  none" in out, "v3 port refused v3:\n" + out)
    st, out = negotiate(socks[V3], V1)
    check(st == 0, "a v3 port must take what v1 asks:\n" + out)
    vmlib.log("ok: per-port modes: %s refuses %s and says why; each takes its own" % (V1, V3))

    # a front-end that stays connected: port.connected, then port.disconnected
    ev.drain()
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(socks[V3])
    ev.wait_note(lambda n: n["method"] == "port.connected" and n["params"]["id"] == ids[V3],
                 5, "port.connected")
    vmlib.wait_for(lambda: port(agent, ids[V3])["connected"] is True, 5, "connected in port.get")
    check(not any(n["method"] == "port.disconnected" for n in ev.notes),
          "port.disconnected while the front-end is still there: %s" % ev.notes)
    s.close()
    ev.wait_note(lambda n: n["method"] == "port.disconnected" and n["params"]["id"] == ids[V3],
                 5, "port.disconnected")
    vmlib.log("ok: connect and disconnect events")

    # kill -9 of one back-end: restarted, serves its mode again; the other never notices
    pid1, pid3 = port(agent, ids[V1])["pid"], port(agent, ids[V3])["pid"]
    os.kill(pid1, signal.SIGKILL)
    n = ev.wait_note(lambda n: n["method"] == "port.broken" and n["params"]["id"] == ids[V1],
                     5, "port.broken")
    check("signal 9" in n["params"]["reason"], "port.broken reason: %s" % n)
    n = ev.wait_note(lambda n: n["method"] == "port.restarted" and n["params"]["id"] == ids[V1],
                     10, "port.restarted")
    p1 = port(agent, ids[V1])
    check(p1["pid"] == n["params"]["pid"] and p1["pid"] != pid1 and p1["restarts"] == 1 and
          p1["state"] == "running" and "signal 9" in p1["last_exit"], "after restart: %s" % p1)
    st, out = negotiate(socks[V1], V1)
    check(st == 0, "restarted v1 port:\n" + out)
    check_access(socks[V1], "after its back-end was restarted")
    check(port(agent, ids[V3])["pid"] == pid3 and pid_alive(pid3), "the v3 port was disturbed")
    vmlib.log("ok: a killed back-end is restarted (pid %d -> %d), the other port untouched" %
              (pid1, p1["pid"]))

    # a hostile front-end: garbage on the v3 socket breaks that connection only
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(socks[V3])
    s.sendall(struct.pack("<III", 0xdead, 0x1, 0xffffff00) + b"\xff" * 4096)
    s.settimeout(5)
    try:
        closed = s.recv(1) == b""
    except (ConnectionResetError, socket.timeout):
        closed = True
    s.close()
    check(closed, "the back-end kept a garbage-sending front-end")
    check(port(agent, ids[V1])["pid"] == p1["pid"] and pid_alive(p1["pid"]),
          "the v1 port was disturbed by v3's front-end")
    st, out = negotiate(socks[V3], V3)
    check(st == 0, "v3 port after a hostile front-end:\n" + out)
    vmlib.log("ok: a hostile front-end breaks only its own connection")

    # a back-end that cannot start: the error names why, and no row remains
    e = agent.client().error("port.add", {
        "id": "blk0", "class": "virtio-blk", "socket": os.path.join(workdir, "blk0.sock"),
        "backing": {"disk": "/nonexistent/dir/disk.img"}})
    check(e["code"] == -32004 and "/nonexistent/dir/disk.img" in e["data"]["reason"],
          "failed back-end: %s" % e)
    check("blk0" not in db_rows(agent) and agent.call("port.list")["ports"] and
          all(p["id"] != "blk0" for p in agent.call("port.list")["ports"]), "blk0 left behind")
    b = agent.call("port.add", {"id": "blk0", "class": "virtio-blk",
                                "socket": os.path.join(workdir, "blk0.sock"),
                                "backing": {"ram": 1 << 20}})
    check(b["class"] == "virtio-blk" and b["mode"].startswith("upstream.guestabi-blk."), str(b))
    e = agent.client().error("port.add", {"id": "other", "class": "virtio-net",
                                          "socket": socks[V1], "backing": {"loopback": True}})
    check(e["code"] == -32001 and e["data"]["path"] == "params.socket", "same socket: %s" % e)
    # a socket that something else listens on is not taken over
    other = os.path.join(workdir, "other.sock")
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(other)
    srv.listen(1)
    e = agent.client().error("port.add", {"id": "thief", "class": "virtio-net", "socket": other,
                                          "backing": {"loopback": True}})
    check(e["code"] == -32001 and e["data"]["errno"] == "EADDRINUSE", "live socket: %s" % e)
    srv.close()
    vmlib.log("ok: a back-end that fails to start leaves nothing; one socket per port; a live "
              "socket is not taken over")

    # port.del: process gone, row gone
    bpid = port(agent, "blk0")["pid"]
    r = agent.call("port.del", {"id": "blk0"})
    check(r == {"id": "blk0", "deleted": True}, str(r))
    check(not pid_alive(bpid) and "blk0" not in db_rows(agent), "blk0 after port.del")
    e = agent.client().error("port.del", {"id": "blk0"})
    check(e["code"] == -32000, str(e))
    ev.close()

    # restarts of the agent: SIGTERM stops the back-ends; SIGKILL takes them down with it
    # (PR_SET_PDEATHSIG); either way every port comes back in its mode on its socket
    for how in ("SIGTERM", "SIGKILL"):
        before = {p["id"]: p for p in agent.call("port.list")["ports"]}
        pids = [p["pid"] for p in before.values()]
        if how == "SIGTERM":
            check(agent.stop() == 0, "guestabid exit status on SIGTERM")
        else:
            agent.kill9()
        vmlib.wait_for(lambda: not any(pid_alive(p) for p in pids), 5,
                       "the back-ends to go with the agent (%s)" % how)
        agent.start()
        after = {p["id"]: p for p in agent.call("port.list")["ports"]}
        check(sorted(after) == sorted(before), "ports after %s: %s" % (how, sorted(after)))
        for i, p in after.items():
            check(p["mode"] == before[i]["mode"] and p["socket"] == before[i]["socket"] and
                  p["state"] == "running" and pid_alive(p["pid"]), "%s after %s: %s" % (i, how, p))
        for mode in (V1, V3):
            st, out = negotiate(socks[mode], mode)
            check(st == 0, "%s after %s:\n%s" % (mode, how, out))
        st, out = negotiate(socks[V1], V3)
        check(st == 1, "v1 port takes v3 after %s" % how)
        check_access(socks[V1], "after guestabid's %s and restart" % how)
        vmlib.log("ok: after %s every port is back in its mode" % how)


if __name__ == "__main__":
    main()
