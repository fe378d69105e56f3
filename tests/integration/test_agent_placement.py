#!/usr/bin/env python3
"""guestabid publishing its host to a real OpenStack Placement 8.0 (its own server, SQLite file
and loopback port): the start-up sync sets exactly the traits `guestabi placement sync` sets
for the same hostcaps (a CLI sync after it changes nothing); Nova-like traits survive a
host.caps refresh; placement.sync answers later with the result and coalesces requests that
arrive while a sync runs; subscribers get placement.synced; a Placement that never answers,
one that answers too slowly (the sync child killed at the hard limit) and one that is stopped
each give placement.sync a clear error while the agent keeps answering other requests, and
once Placement is back the agent's retry syncs by itself; no URL gives a clear error."""

import http.server
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import agentlib  # noqa: E402
import placementlib  # noqa: E402
import vmlib  # noqa: E402
from checks import check, check_eq, check_in  # noqa: E402

HOST = "agent-pl-host"
REMOTE = -32008
UNSUPPORTED = -32002


def log(msg):
    print(msg, flush=True)


def cli(*args, url=None):
    env = dict(os.environ, GUESTABI_SYSTEM_CATALOG="", OS_TOKEN="admin")
    env.pop("OS_PLACEMENT_ENDPOINT", None)
    if url:
        env["OS_PLACEMENT_ENDPOINT"] = url
    r = subprocess.run([vmlib.build_bin("src/cli/guestabi")] + list(args), capture_output=True,
                       text=True, env=env, timeout=300)
    return r.returncode, r.stdout, r.stderr


def agent_env(url=None):
    env = dict(os.environ, GUESTABI_SYSTEM_CATALOG="")
    for k in ("OS_PLACEMENT_ENDPOINT", "OS_TOKEN"):
        env.pop(k, None)
    if url:
        env["OS_PLACEMENT_ENDPOINT"] = url
        env["OS_TOKEN"] = "admin"
    return env


def wait_status(agent, pred, timeout, what):
    deadline = time.monotonic() + timeout
    while True:
        st = agent.call("placement.status")
        if pred(st):
            return st
        if time.monotonic() > deadline:
            raise TimeoutError("%s; placement.status: %s" % (what, json.dumps(st)))
        time.sleep(0.05)


def guestabi_traits(p, uuid):
    return sorted(t for t in p.traits(uuid)["traits"] if t.startswith("CUSTOM_GUESTABI_"))


class FakePlacement:
    """A loopback HTTP server in front of nothing: "silent" accepts and never answers; "slow"
    answers every request after `delay` seconds, as an empty Placement would (no traits, every
    PUT accepted), so a sync's many requests each stay under the timeout but not all of them
    together."""

    def __init__(self):
        self.mode, self.delay, self.requests = "silent", 0.7, 0
        fake = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def answer(self):
                fake.requests += 1
                if fake.mode == "silent":
                    time.sleep(30)
                    return
                time.sleep(fake.delay)
                body = b'{"traits": [], "resource_classes": []}' if self.command == "GET" else b""
                try:
                    self.send_response(200 if self.command == "GET" else 204)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            do_GET = do_PUT = do_POST = answer

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = "http://127.0.0.1:%d" % self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def timed_call(agent, method, params=None):
    t0 = time.monotonic()
    res = agent.call(method, params)
    return res, time.monotonic() - t0


def test_publish(d, p):
    # Nova made this host's provider first, with traits of its own.
    rp = p.call("POST", "/resource_providers", {"name": HOST})
    p.call("PUT", "/resource_providers/%s/traits" % rp["uuid"], {
        "resource_provider_generation": rp["generation"],
        "traits": ["HW_CPU_X86_AVX2", "HW_NIC_SRIOV"]})

    # The endpoint and token from the environment, as the CLI takes them.
    a = agentlib.Agent(d, name="pub", extra=["--host-name", HOST], env=agent_env(p.url))
    try:
        st = wait_status(a, lambda s: s["last"] is not None, 60, "no start-up sync")
        last = st["last"]
        check(last["ok"], "start-up sync failed: %s\n%s" % (last, a.output()))
        check_eq(st["enabled"], True, "enabled")
        check_eq(st["url"], p.url, "url")
        check_eq(last["trigger"], "start", "trigger")
        check_eq(last["host"], HOST, "host")
        check_eq(last["provider"], rp["uuid"], "provider (Nova's, found by name)")
        check(not last["created"] and last["kept"] == 2, "kept Nova's 2 traits: %s" % last)
        check_eq(guestabi_traits(p, rp["uuid"]), sorted(last["traits"]),
                 "the provider's guestabi traits")
        check_eq(last["generation"], p.traits(rp["uuid"])["resource_provider_generation"],
                 "generation")
        check_in("CUSTOM_GUESTABI_HOST", last["traits"], "traits")
        log("ok: start-up sync: provider %s, %d guestabi traits, generation %d (%d ms)" %
            (last["provider"], len(last["traits"]), last["generation"], last["duration_ms"]))

        # The CLI on the same hostcaps: the same traits (its sync changes nothing).
        caps = a.call("host.caps")
        path = os.path.join(d, "caps.json")
        with open(path, "w") as f:
            json.dump(caps, f)
        rc, out, err = cli("--json", "placement", "sync", "--host", path, url=p.url)
        check(rc == 0, "CLI sync: %d %s %s" % (rc, out, err))
        res = json.loads(out)["hosts"][0]
        check_eq((res["host"], res["uuid"], res["added"], res["removed"], res["traits"]),
                 (HOST, rp["uuid"], 0, 0, len(last["traits"])),
                 "the CLI's sync after the agent's (host, uuid, added, removed, traits)")
        log("ok: `guestabi placement sync --host <the agent's hostcaps>` changes nothing")

        # A refresh syncs again; subscribers hear of it; Nova's traits (and a new one) stay.
        cur = p.traits(rp["uuid"])
        p.call("PUT", "/traits/CUSTOM_NOVA_LATE", expect=(201, 204))
        p.call("PUT", "/resource_providers/%s/traits" % rp["uuid"], {
            "resource_provider_generation": cur["resource_provider_generation"],
            "traits": [t for t in cur["traits"] if t != "CUSTOM_GUESTABI_HOST"] +
            ["CUSTOM_NOVA_LATE"]})
        c = a.client()
        c.call("events.subscribe")
        c.call("host.caps", {"refresh": True})
        note = c.wait_note(lambda n: n["method"] == "placement.synced", 60,
                           "placement.synced after a refresh")["params"]
        check_eq((note["trigger"], note["added"], note["removed"], note["kept"]),
                 ("refresh", 1, 0, 3), "refresh sync (trigger, added, removed, kept)")
        check("time_ms" in note and note["provider"] == rp["uuid"], "note: %s" % note)
        t = p.traits(rp["uuid"])["traits"]
        for want in ("HW_CPU_X86_AVX2", "HW_NIC_SRIOV", "CUSTOM_NOVA_LATE",
                     "CUSTOM_GUESTABI_HOST"):
            check_in(want, t, "the provider's traits after a refresh")
        log("ok: host.caps refresh syncs again (placement.synced); Nova's traits survive")

        # placement.sync answers with the sync's result; a second one changes nothing.
        res = c.call("placement.sync")
        check_eq((res["ok"], res["trigger"], res["added"], res["removed"], res["provider"]),
                 (True, "request", 0, 0, rp["uuid"]), "placement.sync (unchanged)")
        gen = p.traits(rp["uuid"])["resource_provider_generation"]
        check_eq(res["generation"], gen, "generation after a no-op sync")

        # Requests that arrive while one runs share the next sync: 3 requests, 2 syncs.
        before = a.call("placement.status")["syncs"]
        reqs = [{"jsonrpc": "2.0", "id": 100 + i, "method": "placement.sync"} for i in range(3)]
        c.send_raw(b"".join(json.dumps(r).encode() + b"\n" for r in reqs))
        got = sorted(c.read_reply()["id"] for _ in reqs)
        check_eq(got, [100, 101, 102], "ids answered")
        after = a.call("placement.status")["syncs"]
        check_eq(after - before, 2, "syncs for 3 requests sent at once")
        # ... and inside a batch it cannot wait: a clear error
        c.send_raw(b'[{"jsonrpc": "2.0", "id": 7, "method": "placement.sync"}]\n')
        e = c.read_reply()[0]["error"]
        check_in("not inside a batch", e["data"]["reason"], "batch error")
        log("ok: placement.sync answers later; 3 requests at once took 2 syncs; a batch is refused")

        # Placement stopped: placement.sync answers why; the agent goes on serving.
        p.stop()
        e = c.error("placement.sync")
        check_eq(e["code"], REMOTE, "code when Placement is down")
        check_in("cannot reach Placement at " + p.url, e["data"]["reason"], "reason")
        check_eq(e["data"]["errno"], "EREMOTEIO", "errno")
        st = a.call("placement.status")
        check(not st["last"]["ok"] and st["last"]["errno"] == "ECONNREFUSED" and st["failed"] >= 1,
              "status after a failure: %s" % st)
        check("retry_in_ms" in st and st["retry_in_ms"] <= 300000, "no retry due: %s" % st)
        check_in(HOST, json.dumps(a.call("host.platforms")), "host.platforms")
        c.close()
        log("ok: Placement stopped: -32008 \"%s\"" % e["data"]["reason"][:80])

        # Placement back on the same port, with its database: the agent syncs by itself.
        p.log.close()
        p.__enter__()
        st = wait_status(a, lambda s: s["last"]["ok"], 90, "no sync after Placement came back")
        check_eq((st["last"]["trigger"], st["last"]["provider"]), ("retry", rp["uuid"]),
                 "the sync after Placement came back (trigger, provider)")
        check("retry_in_ms" not in st, "a retry still due after a success: %s" % st)
        log("ok: Placement back: the agent's retry synced (%d failed before)" % st["failed"])
    finally:
        a.stop()


def test_slow(d):
    fake = FakePlacement()
    a = agentlib.Agent(d, name="slow", env=agent_env(),
                       extra=["--placement-url", fake.url, "--placement-token", "admin",
                              "--placement-timeout-ms", "1500"])
    try:
        # The start-up sync waits on a listener that never answers; the loop does not.
        st = a.call("placement.status")
        check(st["running"], "no sync running at start: %s" % st)
        worst = 0
        for _ in range(10):
            res, took = timed_call(a, "rpc.methods")
            check("placement.sync" in [m["name"] for m in res["methods"]], "rpc.methods")
            worst = max(worst, took)
        check(worst < 0.5, "rpc.methods took %.3f s while a sync waits" % worst)
        c = a.client()
        t0 = time.monotonic()
        e = c.error("placement.sync")  # answered after the start-up sync and its own
        took = time.monotonic() - t0
        check_eq(e["code"], REMOTE, "code for a silent Placement")
        check_in("did not answer", e["data"]["reason"], "reason")
        check_in("within 1500 ms", e["data"]["reason"], "reason")
        check(took < 1.5 * 2 + 2, "placement.sync took %.1f s" % took)
        log("ok: a silent Placement: rpc.methods answered in at most %.0f ms meanwhile; "
            "placement.sync: \"%s\"" % (worst * 1000, e["data"]["reason"][:90]))

        # Each answer in time, the whole sync not: the child is killed at 4 x 1500 ms.
        fake.mode = "slow"
        n0 = fake.requests
        t0 = time.monotonic()
        e = c.error("placement.sync")
        took = time.monotonic() - t0
        check_eq(e["code"], REMOTE, "code for a sync past the hard limit")
        check_in("killed", e["data"]["reason"], "reason")
        check(5.5 < took < 9, "killed after %.1f s (hard limit 6 s)" % took)
        check(fake.requests - n0 >= 8, "only %d requests before the kill" % (fake.requests - n0))
        st = a.call("placement.status")
        check_eq((st["running"], st["last"]["errno"], st["hard_limit_ms"]),
                 (False, "ETIMEDOUT", 6000), "status after the kill")
        c.close()
        log("ok: a sync past its hard limit killed after %.1f s (%d requests each answered in "
            "time)" % (took, fake.requests - n0))
    finally:
        a.stop()
        fake.close()


def test_off(d):
    a = agentlib.Agent(d, name="off", env=agent_env())
    try:
        c = a.client()
        e = c.error("placement.sync")
        check_eq(e["code"], UNSUPPORTED, "code without a URL")
        check_in("--placement-url", e["data"]["reason"], "reason")
        st = c.call("placement.status")
        check_eq((st["enabled"], st["running"], st["last"]), (False, False, None), "status")
        c.close()
    finally:
        a.stop()
    r = subprocess.run([vmlib.build_bin("src/agent/guestabid"), "--socket",
                        os.path.join(d, "bad.sock"), "--state-dir", os.path.join(d, "bad"),
                        "--placement-url", "ftp://example"], capture_output=True, text=True,
                       env=agent_env(), timeout=60)
    check(r.returncode != 0, "guestabid started with an ftp:// URL")
    check_in("not an http:// or https:// URL", r.stderr, "guestabid's stderr")
    log("ok: no URL: -32002 \"%s\"; a bad URL refused at start" % e["data"]["reason"])


def main():
    why = placementlib.available()
    if why:
        print("SKIP: " + why, flush=True)
        sys.exit(77)
    vmlib.build_bin("src/agent/guestabid")
    with tempfile.TemporaryDirectory(prefix="guestabi-agent-pl-") as d:
        test_off(d)
        test_slow(d)
        with placementlib.Placement(workdir=os.path.join(d, "placement")) as p:
            log("placement-api pid %d on %s" % (p.proc.pid, p.url))
            test_publish(d, p)


if __name__ == "__main__":
    main()
