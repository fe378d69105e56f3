#!/usr/bin/env python3
"""guestabi placement against a real OpenStack Placement 8.0 (its own server, SQLite file and
loopback port): several hosts synced; `placement hosts` gives exactly the hosts `guestabi
filter` gives; traits and inventory that are not guestabi's survive a sync; a concurrent
writer's change (a real 409) is re-read and kept; a second sync changes nothing; labels agree
with the traits; an unreachable, slow or refusing Placement gives a clear error."""

import copy
import http.server
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import placementlib  # noqa: E402
from placementlib import check  # noqa: E402

SOURCE_ROOT = os.environ.get("GUESTABI_SOURCE_ROOT", os.path.dirname(os.path.dirname(
    os.path.dirname(os.path.abspath(__file__)))))
BUILD_ROOT = os.environ.get("GUESTABI_BUILD_ROOT", os.path.join(SOURCE_ROOT, "build"))
GUESTABI = os.path.join(BUILD_ROOT, "src/cli/guestabi")
EXAMPLES = os.path.join(SOURCE_ROOT, "docs/examples")
LABEL_NAME = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9._-]{0,61}[A-Za-z0-9])?$")


def log(msg):
    print(msg, flush=True)


def guestabi(*args, url=None, token="admin"):
    env = dict(os.environ, GUESTABI_SYSTEM_CATALOG="")
    env.pop("OS_PLACEMENT_ENDPOINT", None)
    env.pop("OS_TOKEN", None)
    if url:
        env["OS_PLACEMENT_ENDPOINT"] = url
    if token:
        env["OS_TOKEN"] = token
    r = subprocess.run([GUESTABI] + list(args), capture_output=True, text=True, env=env,
                       timeout=300)
    return r.returncode, r.stdout, r.stderr


def load(name):
    with open(os.path.join(EXAMPLES, name)) as f:
        return json.load(f)


def write(d, name, doc):
    path = os.path.join(d, name + ".json")
    with open(path, "w") as f:
        json.dump(doc, f)
    return path


def make_hosts(d):
    """The two example generations and variations of them, as files."""
    h19, h24 = load("host-2019.json"), load("host-2024.json")
    docs = {"rack1-2019": h19, "rack9-2024": h24}
    v = copy.deepcopy(h24)  # a 2024 host whose kernel lost USO: no linux-6.2
    v["host"] = "gen-nouso"
    v["kernel"]["capabilities"]["tap.uso4"] = "unsupported"
    docs[v["host"]] = v
    v = copy.deepcopy(h24)  # every VF taken
    v["host"] = "gen-busyvf"
    for f in v["failover"]:
        f["in_use"] = True
    docs[v["host"]] = v
    v = copy.deepcopy(h19)  # no mtty-1 instance left, and a vGPU type with an odd name
    v["host"] = "gen-vgpu"
    v["device_types"] = [{"name": "mtty-1", "kind": "mdev", "available_instances": 0},
                         {"name": "i915-GVTg_V5_4", "kind": "mdev", "loads": ["1.1", "1.0"],
                          "writes": ["1.1"]}]
    docs[v["host"]] = v
    v = copy.deepcopy(h24)  # only a blk back-end
    v["host"] = "gen-blkonly"
    v["backends"] = [b for b in v["backends"] if b["class"] == "virtio-blk"]
    docs[v["host"]] = v
    v = copy.deepcopy(h24)  # a name that differs from another only by '.' and '-'
    v["host"] = "gen.dots"
    v["device_types"].append({"name": "i915-GVTg.V5-4", "kind": "mdev", "loads": ["1.0"],
                              "writes": ["1.0"]})
    docs[v["host"]] = v
    return {name: write(d, name, doc) for name, doc in docs.items()}


def make_pins(d):
    pins = {"common": os.path.join(EXAMPLES, "vm-common.json"),
            "newest": os.path.join(EXAMPLES, "vm-newest.json")}

    def pin(name, platform=None, devices=()):
        doc = {"schema": "guestabi.pin/1", "vm": name, "devices": list(devices)}
        if platform:
            doc["platform"] = platform
        pins[name] = write(d, "pin-" + name, doc)
    pin("uso", "linux-6.2")
    pin("blk2", devices=[{"id": "d", "class": "virtio-blk", "mode": "upstream.guestabi-blk.v2"}])
    pin("net2", "linux-4.13",
        devices=[{"id": "n", "class": "virtio-net", "mode": "upstream.guestabi-net.v2"}])
    pin("mtty", devices=[{"id": "s", "class": "mdev", "type": "mtty-1", "state_version": "1.0"}])
    pin("vgpu", devices=[{"id": "g", "class": "mdev", "type": "i915-GVTg_V5_4",
                          "state_version": "1.0"}])
    pin("vgpu-dots", devices=[{"id": "g", "class": "mdev", "type": "i915-GVTg.V5-4",
                               "state_version": "1.0"}])
    pin("failover", "linux-4.13", devices=[{"id": "n", "class": "virtio-net",
                              "mode": "dpdk.vhost-net.18.11",
                              "failover": {"primary": "hd", "device": "8086:154c"}}])
    pin("none")
    return pins


def filter_hosts(pin, host_files):
    st, out, err = guestabi("--json", "filter", "--pin", pin, *host_files)
    check(st in (0, 1), "filter: %d %s" % (st, err))
    return sorted(json.loads(out)["hosts"])


def placement_hosts(url, pin, *extra):
    st, out, err = guestabi("--json", "placement", "hosts", "--pin", pin, *extra, url=url)
    check(st in (0, 1), "placement hosts: %d %s %s" % (st, out, err))
    doc = json.loads(out)
    check(st == (0 if doc["hosts"] else 1), "exit status %d for %s" % (st, doc["hosts"]))
    return doc


def sync(url, *files, token="admin"):
    args = ["--json", "placement", "sync"]
    for f in files:
        args += ["--host", f]
    st, out, err = guestabi(*args, url=url, token=token)
    check(st == 0, "sync: %d %s %s" % (st, out, err))
    return {h["host"]: h for h in json.loads(out)["hosts"]}


class Proxy:
    """A loopback HTTP proxy in front of Placement that can misbehave on purpose: race (on the
    first PUT of a provider's traits it first writes that provider's traits itself, adding
    CUSTOM_RACER, so the client's PUT carries a stale generation and Placement answers 409),
    slow (answers after `delay` seconds), strip_token (drops x-auth-token) or microversion (asks
    for one Placement does not have)."""

    def __init__(self, placement, mode):
        self.placement, self.mode, self.raced, self.delay = placement, mode, 0, 3
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def forward(self):
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n) if n else None
                if proxy.mode == "slow":
                    time.sleep(proxy.delay)
                m = re.match(r"^/resource_providers/([0-9a-f-]+)/traits$", self.path)
                if proxy.mode == "race" and self.command == "PUT" and m and not proxy.raced:
                    proxy.raced += 1
                    cur = proxy.placement.traits(m.group(1))
                    proxy.placement.call("PUT", "/traits/CUSTOM_RACER", expect=(201, 204))
                    proxy.placement.call("PUT", self.path, {
                        "resource_provider_generation": cur["resource_provider_generation"],
                        "traits": cur["traits"] + ["CUSTOM_RACER"]})
                hdr = {k: v for k, v in self.headers.items()
                       if k.lower() in ("x-auth-token", "openstack-api-version", "accept",
                                        "content-type")}
                if proxy.mode == "strip_token":
                    hdr = {k: v for k, v in hdr.items() if k.lower() != "x-auth-token"}
                if proxy.mode == "microversion":
                    hdr = {k: ("placement 1.99" if k.lower() == "openstack-api-version" else v)
                           for k, v in hdr.items()}
                req = urllib.request.Request(proxy.placement.url + self.path, data=body,
                                             headers=hdr, method=self.command)
                try:
                    with urllib.request.urlopen(req, timeout=30) as r:
                        status, text, ctype = r.status, r.read(), r.headers.get("Content-Type")
                except urllib.error.HTTPError as e:
                    status, text, ctype = e.code, e.read(), e.headers.get("Content-Type")
                try:
                    self.send_response(status)
                    if ctype:
                        self.send_header("Content-Type", ctype)
                    self.send_header("Content-Length", str(len(text)))
                    self.send_header("Connection", "close")
                    self.end_headers()
                    self.wfile.write(text)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            do_GET = do_PUT = do_POST = do_DELETE = forward

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = "http://127.0.0.1:%d" % self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


def main():
    why = placementlib.available()
    if why:
        print("SKIP: " + why, flush=True)
        sys.exit(77)
    check(os.access(GUESTABI, os.X_OK), GUESTABI + " is not built")
    with tempfile.TemporaryDirectory(prefix="guestabi-pl-test-") as d, \
            placementlib.Placement(workdir=d) as p:
        log("placement-api pid %d on %s" % (p.proc.pid, p.url))
        hosts = make_hosts(d)
        pins = make_pins(d)

        # Someone else (Nova) made rack1-2019's provider first, with its own traits and
        # inventory: guestabi finds it and leaves those as they are.
        rp = p.call("POST", "/resource_providers", {"name": "rack1-2019"})
        p.call("PUT", "/resource_providers/%s/traits" % rp["uuid"], {
            "resource_provider_generation": rp["generation"],
            "traits": ["HW_CPU_X86_AVX2", "HW_NIC_SRIOV"]})
        p.call("PUT", "/resource_providers/%s/inventories" % rp["uuid"], {
            "resource_provider_generation": rp["generation"] + 1,
            "inventories": {"VCPU": {"total": 8}, "MEMORY_MB": {"total": 16384}}})

        first = sync(p.url, *hosts.values())
        check(set(first) == set(hosts), "synced %s" % sorted(first))
        check(not first["rack1-2019"]["created"] and first["rack1-2019"]["uuid"] == rp["uuid"],
              "rack1-2019 must be Nova's provider: %s" % first["rack1-2019"])
        check(all(first[h]["created"] for h in hosts if h != "rack1-2019"), "others created")
        check(first["rack1-2019"]["kept"] == 2, "two foreign traits kept: %s" % first)
        t = p.traits(rp["uuid"])["traits"]
        for want in ("HW_CPU_X86_AVX2", "HW_NIC_SRIOV", "CUSTOM_GUESTABI_HOST",
                     "CUSTOM_GUESTABI_MODE_UPSTREAM_DGUESTABI_HNET_DV1"):
            check(want in t, "%s missing from rack1-2019: %s" % (want, t))
        inv = p.call("GET", "/resource_providers/%s/inventories" % rp["uuid"])["inventories"]
        check(inv["VCPU"]["total"] == 8 and inv["MEMORY_MB"]["total"] == 16384,
              "Nova's inventory changed: %s" % inv)
        check(inv["CUSTOM_GUESTABI_VF_8086_K154C"]["total"] == 1, "VF inventory: %s" % inv)
        dots = p.traits(p.provider("gen.dots")["uuid"])["traits"]
        check("CUSTOM_GUESTABI_STATE_I915_H_CG_CV_CTG_D_CV5_H4__1_D0" in dots, str(dots))
        log("ok: %d hosts synced; Nova's provider, traits and inventory kept" % len(first))

        again = sync(p.url, *hosts.values())
        for h, res in again.items():
            check(res["added"] == 0 and res["removed"] == 0 and not res["inventory_set"] and
                  not res["created"], "second sync of %s changed something: %s" % (h, res))
        gens = {h: p.traits(r["uuid"])["resource_provider_generation"] for h, r in again.items()}
        sync(p.url, *hosts.values())
        for h, r in again.items():
            check(p.traits(r["uuid"])["resource_provider_generation"] == gens[h],
                  "a no-op sync bumped %s's generation" % h)
        log("ok: a second sync changes nothing (generations unchanged)")

        # Placement's answer is the engine's answer, pin by pin.
        files = list(hosts.values())
        narrowed = 0
        for name, pin in pins.items():
            want = filter_hosts(pin, files)
            got = placement_hosts(p.url, pin)["hosts"]
            check(got == want, "pin %s: Placement says %s, filter says %s" % (name, got, want))
            narrowed += 0 < len(want) < len(hosts)
            log("ok: pin %-10s -> %s" % (name, ", ".join(got) or "no host"))
        check(narrowed >= 5, "too few pins tell the hosts apart (%d)" % narrowed)
        check(placement_hosts(p.url, pins["vgpu"])["hosts"] == ["gen-vgpu"], "vgpu")
        # a virtio-net pin without a platform: filter takes no host, the query is refused
        unpinned = write(d, "pin-unpinned", {"schema": "guestabi.pin/1", "vm": "unpinned",
                                             "devices": [{"id": "n", "class": "virtio-net",
                                                          "mode": "upstream.guestabi-net.v1"}]})
        check(filter_hosts(unpinned, files) == [], "filter took a platform-less virtio-net pin")
        st, out, err = guestabi("placement", "hosts", "--pin", unpinned, url=p.url)
        check(st == 2 and "names no platform" in err, "placement hosts, unpinned: %d %s" % (st, err))
        check(placement_hosts(p.url, pins["vgpu-dots"])["hosts"] == ["gen.dots"], "vgpu-dots")

        # With resources: allocation candidates; only rack1-2019 has VCPU and memory.
        doc = placement_hosts(p.url, pins["common"], "--resources", "VCPU:2,MEMORY_MB:4096")
        check(doc["hosts"] == ["rack1-2019"], "candidates: %s" % doc)
        check(placement_hosts(p.url, pins["common"], "--resources", "VCPU:9")["hosts"] == [],
              "9 VCPUs on an 8-VCPU host")
        log("ok: allocation candidates with VCPU/MEMORY_MB")

        # --explain names what is missing, in check's words
        st, out, err = guestabi("placement", "hosts", "--pin", pins["newest"], "--explain",
                                "rack1-2019", url=p.url)
        check(st == 1, "explain exit %d: %s" % (st, out + err))
        for want in ("does not list platform linux-6.2 among those it runs",
                     "device net0 is pinned to mode upstream.guestabi-net.v3",
                     "device disk0 is pinned to mode upstream.guestabi-blk.v2"):
            check(want in out, "explain lacks %r:\n%s" % (want, out))
        st, out, err = guestabi("placement", "hosts", "--pin", pins["failover"], "--explain",
                                "gen-busyvf", url=p.url)
        check(st == 1 and "needs a free 8086:154c virtual function" in out, out + err)
        st, out, err = guestabi("placement", "hosts", "--pin", pins["newest"], "--explain",
                                "rack9-2024", url=p.url)
        check(st == 0 and "compatible" in out, out + err)
        log("ok: --explain")

        # A host that lost a mode: its trait goes, Nova's stay.
        h19 = load("host-2019.json")
        h19["backends"] = [b for b in h19["backends"] if b["name"] != "ovs-dpdk"]
        res = sync(p.url, write(d, "rack1-2019-less", h19))["rack1-2019"]
        check(res["removed"] == 3 and res["added"] == 0, "removal: %s" % res)
        t = p.traits(rp["uuid"])["traits"]
        check("HW_CPU_X86_AVX2" in t and "CUSTOM_GUESTABI_MODE_DPDK_DVHOST_HNET_D18_D11" not in t,
              "after removal: %s" % t)
        log("ok: guestabi's traits removed, the others kept")

        # A concurrent writer between our read and our write: a real 409, re-read, kept.
        with Proxy(p, "race") as px:
            v = load("host-2024.json")
            v["host"] = "gen-raced"
            res = sync(px.url, write(d, "gen-raced", v))["gen-raced"]
            check(px.raced == 1 and res["conflicts"] == 1, "race: %s" % res)
            t = p.traits(res["uuid"])["traits"]
            check("CUSTOM_RACER" in t and "CUSTOM_GUESTABI_MODE_UPSTREAM_DGUESTABI_HNET_DV3" in t,
                  "the racer's trait or ours is lost: %s" % t)
        log("ok: a 409 from a concurrent writer is re-read and the writer's trait kept")

        # Labels: valid Kubernetes syntax, one per trait (and per free VF class)
        res = sync(p.url, hosts["rack1-2019"])["rack1-2019"]
        check(res["added"] == 3 and res["removed"] == 0, "re-sync: %s" % res)
        for name, path in hosts.items():
            st, out, err = guestabi("--json", "labels", "--host", path)
            check(st == 0, err)
            labels = json.loads(out)["labels"]
            uuid = p.provider(name)["uuid"]
            traits = [x for x in p.traits(uuid)["traits"] if x.startswith("CUSTOM_GUESTABI_")]
            inv = p.call("GET", "/resource_providers/%s/inventories" % uuid)["inventories"]
            free = [rc for rc, i in inv.items() if rc.startswith("CUSTOM_GUESTABI_") and
                    i["total"] > i["reserved"]]
            want = {"guestabi.io/" + x[len("CUSTOM_GUESTABI_"):].lower()
                    for x in traits + free}
            check(set(labels) == want, "%s: labels %s, traits %s" % (name, sorted(labels),
                                                                        sorted(want)))
            for k, val in labels.items():
                prefix, _, seg = k.partition("/")
                check(prefix == "guestabi.io" and LABEL_NAME.match(seg) and val == "true",
                      "bad label %s=%s" % (k, val))
        for name, pin in pins.items():
            st, out, err = guestabi("--json", "labels", "--pin", pin)
            check(st == 0, err)
            sel = json.loads(out)["nodeSelector"]
            q = placement_hosts(p.url, pin)
            names = q["required"].split(",") + [r.split(":")[0] for r in
                                                (q["resources"] or "").split(",") if r]
            want = {"guestabi.io/" + x[len("CUSTOM_GUESTABI_"):].lower() for x in names}
            check(set(sel) == want, "pin %s: selector %s, query %s" % (name, sel, want))
        log("ok: labels agree with the traits and the queries")

        # A VF someone allocated cannot be taken out of the inventory: Placement's 409 that is
        # not a generation conflict is an error naming it, and the host is not claimed synced.
        uuid24 = p.provider("rack9-2024")["uuid"]
        consumer = "6a2f4c1e-0b7d-4c55-9a0e-13c0ffee0013"
        p.call("PUT", "/allocations/" + consumer, {
            "allocations": {uuid24: {"resources": {"CUSTOM_GUESTABI_VF_8086_K154C": 1}}},
            "consumer_generation": None, "project_id": "p", "user_id": "u",
            "consumer_type": "INSTANCE"}, expect=(204,))
        v = load("host-2024.json")
        v["failover"] = []
        st, out, err = guestabi("placement", "sync", "--host", write(d, "no-vf", v), url=p.url)
        check(st == 2 and "conflict (409)" in err and "host rack9-2024 was not synced" in err,
              err)
        inv = p.call("GET", "/resource_providers/%s/inventories" % uuid24)["inventories"]
        check("CUSTOM_GUESTABI_VF_8086_K154C" in inv, "in-use inventory removed: %s" % inv)
        p.call("DELETE", "/allocations/" + consumer, expect=(204,))
        log("ok: an allocated VF class is not removed; the 409 is named")

        # Errors a person can act on.
        st, out, err = guestabi("placement", "sync", "--host", hosts["rack9-2024"], url=None,
                                token=None)
        check(st == 2 and "OS_PLACEMENT_ENDPOINT" in err, err)
        with Proxy(p, "strip_token") as px:
            st, out, err = guestabi("placement", "hosts", "--pin", pins["common"], url=px.url)
            check(st == 2 and "refused the token (401)" in err, err)
        with Proxy(p, "microversion") as px:
            st, out, err = guestabi("placement", "hosts", "--pin", pins["common"], url=px.url)
            check(st == 2 and "does not speak microversion 1.39" in err, err)
        with Proxy(p, "slow") as px:
            st, out, err = guestabi("placement", "sync", "--timeout", "1", "--host",
                                    hosts["rack9-2024"], url=px.url)
            check(st == 2 and "did not answer" in err and "within 1000 ms" in err and
                  "was not synced" in err, err)
        # Placement stopped (by its PID): nothing listens there any more.
        p.stop()
        st, out, err = guestabi("placement", "sync", "--host", hosts["rack9-2024"], url=p.url)
        check(st == 2 and "cannot reach Placement at " + p.url in err and
              "was not synced" in err, err)
        st, out, err = guestabi("placement", "hosts", "--pin", pins["common"], url=p.url)
        check(st == 2 and "cannot reach Placement" in err, err)
        log("ok: no endpoint, 401, 406, slow and down each give a clear error")


if __name__ == "__main__":
    main()
