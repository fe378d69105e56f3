#!/usr/bin/env python3
"""guestabid crashes and its database: kill -9 of the agent at random points of port.add and
port.del (a loop of 50 or more kills), and after every restart the database, the agent's
port.list and the running back-ends agree (nothing lost, nothing duplicated, no back-end of an
earlier agent left over). Then a full disk and a read-only state directory: a clear RPC error
(-32003), the running ports untouched, the database intact."""

import os
import random
import sqlite3
import subprocess
import sys
import time

import agentlib
import vmlib
from agentlib import check

KILLS = int(os.environ.get("GUESTABI_AGENT_KILLS", "60"))


def enter_own_mount_ns():
    """Re-run under unshare --mount: the tmpfs of the full-disk part is the test's own."""
    if os.environ.get("GUESTABI_TEST_MOUNTNS") == str(os.getpid()):
        return
    if subprocess.run(["unshare", "--mount", "true"], capture_output=True).returncode != 0:
        vmlib.skip("cannot create a mount namespace (unshare --mount)")
    sys.stdout.flush()
    argv = ["unshare", "--mount", "--propagation", "private", "--", "sh", "-c",
            'GUESTABI_TEST_MOUNTNS=$$ exec "$@"', "sh", sys.executable] + sys.argv
    os.execvp(argv[0], argv)


def db_rows(state_dir):
    db = sqlite3.connect(os.path.join(state_dir, "guestabid.db"))
    try:
        return {r[0]: r[1:] for r in db.execute("SELECT id, socket, mode FROM ports")}
    finally:
        db.close()


def integrity(state_dir):
    db = sqlite3.connect(os.path.join(state_dir, "guestabid.db"))
    try:
        return db.execute("PRAGMA integrity_check").fetchone()[0]
    finally:
        db.close()


def backends_in(workdir):
    """pid -> cmdline of every guestabi back-end serving a socket under workdir."""
    out = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        argv = agentlib.cmdline(int(d))
        if argv and argv[0].endswith((b"guestabi-net", b"guestabi-blk")) and \
                any(a.startswith(workdir.encode()) for a in argv):
            try:
                with open("/proc/%s/stat" % d) as f:
                    if f.read().rsplit(")", 1)[1].split()[0] == "Z":
                        continue
            except (FileNotFoundError, ProcessLookupError):
                continue
            out[int(d)] = argv
    return out


def agree(agent, workdir):
    """The database, port.list and the live back-ends say the same."""
    rows = db_rows(agent.state_dir)
    listed = {p["id"]: p for p in agent.call("port.list")["ports"]}
    check(sorted(rows) == sorted(listed), "db %s, port.list %s" % (sorted(rows), sorted(listed)))
    pids = {p["pid"] for p in listed.values()}
    vmlib.wait_for(lambda: set(backends_in(workdir)) == pids, 5,
                   "the back-ends to be exactly the listed ports' (%s, live %s)" %
                   (sorted(pids), sorted(backends_in(workdir))))
    live = backends_in(workdir)
    for i, p in listed.items():
        check(p["state"] == "running", "%s: %s" % (i, p))
        argv = live[p["pid"]]
        check(rows[i][0].encode() in argv and rows[i][1].encode() in argv,
              "%s: back-end runs %s, db says %s" % (i, argv, rows[i]))
        check(os.path.exists(p["socket"]), "%s: no socket" % i)
    return rows


def kill_loop(workdir):
    agent = agentlib.Agent(workdir, "crashy")
    rng = random.Random(int(os.environ.get("GUESTABI_SEED", "9")))
    pool = ["p%d" % i for i in range(6)]
    landed = {"add": [0, 0], "del": [0, 0]}  # [took effect, did not]
    try:
        for k in range(KILLS):
            rows = db_rows(agent.state_dir)
            absent = [i for i in pool if i not in rows]
            if absent and (not rows or rng.random() < 0.55):
                op, pid = "add", rng.choice(absent)
                params = {"id": pid, "class": "virtio-net",
                          "socket": os.path.join(workdir, pid + ".sock"),
                          "mode": rng.choice(["upstream.guestabi-net.v1",
                                              "upstream.guestabi-net.v2"]),
                          "backing": {"loopback": True}}
            else:
                op, pid = "del", rng.choice(sorted(rows))
                params = {"id": pid}
            c = agent.client()
            c.send_raw(('{"jsonrpc": "2.0", "id": 1, "method": "port.%s", "params": %s}\n' %
                        (op, __import__("json").dumps(params))).encode())
            # anywhere from before the request is read to after it is answered: parsing, the
            # insert or delete, starting or stopping the back-end
            # (a third of them at once: before the agent has read or committed it)
            if rng.random() > 0.33:
                time.sleep(rng.random() * 0.012)
            agent.kill9()
            c.close()
            agent.start()
            rows = agree(agent, workdir)
            took = (pid in rows) == (op == "add")
            landed[op][0 if took else 1] += 1
        vmlib.log("ok: %d kills -9 during port.add/port.del; after each restart db, port.list "
                  "and back-ends agree (add took effect %d/%d, del %d/%d)" %
                  (KILLS, landed["add"][0], sum(landed["add"]), landed["del"][0],
                   sum(landed["del"])))
        check(KILLS >= 50, "at least 50 kills")
        check(integrity(agent.state_dir) == "ok", "integrity_check")
    finally:
        agent.stop()


def full_disk(workdir):
    small = os.path.join(workdir, "small")
    os.makedirs(small)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", small], check=True)
    try:
        state = os.path.join(small, "state")
        agent = agentlib.Agent(workdir, "full", state_dir=state)
        try:
            def add(pid):
                return agent.client().call_raw("port.add", {
                    "id": pid, "class": "virtio-net",
                    "socket": os.path.join(workdir, pid + ".fsock"),
                    "backing": {"loopback": True}})
            check("result" in add("keep"), "first port.add")
            filler = os.path.join(small, "filler")
            subprocess.run(["dd", "if=/dev/zero", "of=" + filler, "bs=4k"],
                           capture_output=True)
            err = None
            for i in range(40):
                r = add("more%d" % i)
                if "error" in r:
                    err = r["error"]
                    break
            check(err is not None and err["code"] == -32003 and err["data"]["errno"] == "ENOSPC"
                  and "full" in err["data"]["reason"], "port.add on a full disk: %s" % err)
            check(agent.alive(), "the agent died on a full disk")
            rows = agree(agent, workdir)
            check("keep" in rows, "the first port vanished")
            os.unlink(filler)
            check("result" in add("after"), "port.add once there is room again")
            check(integrity(state) == "ok", "integrity after a full disk")
            vmlib.log("ok: a full disk: -32003 ENOSPC (%s), ports and database intact" %
                      err["data"]["reason"])

            rows = agree(agent, workdir)
        finally:
            agent.stop()
        # a state directory that cannot be written: the agent serves the ports of its database
        # and refuses to change them (-32003 EROFS); the database is untouched
        subprocess.run(["mount", "-o", "remount,ro", small], check=True)
        ro = agentlib.Agent(workdir, "readonly", state_dir=state)
        try:
            listed = sorted(p["id"] for p in ro.call("port.list")["ports"])
            check(listed == sorted(rows), "read-only: port.list %s, db %s" % (listed, sorted(rows)))
            c = ro.client()
            e = c.error("port.add", {"id": "new", "class": "virtio-net", "backing":
                                     {"loopback": True},
                                     "socket": os.path.join(workdir, "new.fsock")})
            check(e["code"] == -32003 and e["data"]["errno"] == "EROFS" and
                  "read-only" in e["data"]["reason"], "port.add, read-only: %s" % e)
            e = c.error("port.del", {"id": "keep"})
            check(e["code"] == -32003, "port.del, read-only: %s" % e)
            check(any(p["id"] == "keep" and p["state"] == "running"
                      for p in ro.call("port.list")["ports"]), "keep after a refused del")
            reason = e["data"]["reason"]
        finally:
            ro.stop()
        # ... unless a crash left a write-ahead log only a writer can replay: then it says so
        subprocess.run(["mount", "-o", "remount,rw", small], check=True)
        crashed = agentlib.Agent(workdir, "crashed", state_dir=state)
        crashed.call("port.del", {"id": "after"})
        crashed.kill9()
        wal = os.path.join(state, "guestabid.db-wal")
        check(os.path.exists(wal) and os.path.getsize(wal) > 0, "no write-ahead log after kill -9")
        subprocess.run(["mount", "-o", "remount,ro", small], check=True)
        try:
            agentlib.Agent(workdir, "walled", state_dir=state)
            check(False, "the agent started read-only with a log to replay")
        except RuntimeError as e:
            msg = str(e)
        check("write-ahead log" in msg and state in msg, "no clear error: %s" % msg)
        subprocess.run(["mount", "-o", "remount,rw", small], check=True)
        rows = db_rows(state)  # (replays the log: the deletion the reply confirmed is there)
        check(db_rows(state) == rows and "after" not in rows and integrity(state) == "ok",
              "database after read-only")
        vmlib.log("ok: a read-only state directory: ports served, changes refused (%s); with a "
                  "log to replay the agent refuses to start" % reason)
    finally:
        subprocess.run(["umount", "-l", small])


def main():
    if os.geteuid() != 0:
        vmlib.skip("needs root (mount namespace, the agent probes taps)")
    enter_own_mount_ns()
    with vmlib.Scenario("agent-crash") as sc:
        kill_loop(sc.dir)
        full_disk(sc.dir)


if __name__ == "__main__":
    main()
