#!/usr/bin/env python3
"""The system catalog (docs/guestabi.1, FILES and ENVIRONMENT): the catalog is the built-in
one, then /etc/guestabi/catalog.d/*.json (or the directory GUESTABI_SYSTEM_CATALOG names;
empty for none), then --catalog. A system entry overrides a built-in one of the same name,
a --catalog entry overrides a system one. The default directory is tried in a mount
namespace of the test's own, with an overlay on /etc, so this machine's /etc is untouched."""

import json
import os
import shutil
import subprocess
import tempfile

from checks import check, check_eq, check_in
import vmlib

SITE_MODE, SITE_PLATFORM = "acme.ovs-dpdk.2.17", "linux-acme-5.15"
V1 = "upstream.guestabi-net.v1"


def guestabi(args, system=None, prefix=()):
    """Run guestabi with GUESTABI_SYSTEM_CATALOG set to system (None: unset)."""
    env = dict(os.environ)
    env.pop("GUESTABI_SYSTEM_CATALOG", None)
    if system is not None:
        env["GUESTABI_SYSTEM_CATALOG"] = system
    r = subprocess.run(list(prefix) + [vmlib.build_bin("src/cli/guestabi")] + list(args),
                       capture_output=True, text=True, env=env)
    return r.returncode, r.stdout, r.stderr


def modes(system=None, extra=(), prefix=()):
    st, out, err = guestabi(list(extra) + ["--json", "modes"], system, prefix)
    check(st == 0, "guestabi modes: exit %d\n%s%s" % (st, out, err))
    return {m["name"]: m for m in json.loads(out)["modes"]}


def platforms(system=None):
    st, out, err = guestabi(["--json", "platforms"], system)
    check(st == 0, "guestabi platforms: exit %d\n%s%s" % (st, out, err))
    return {p["name"]: p for p in json.loads(out)["platforms"]}


def main():
    data = os.path.join(vmlib.SOURCE_ROOT, "tests", "data", "catalogs")
    work = tempfile.mkdtemp(prefix="gabi-syscat-")
    try:
        sysdir = os.path.join(work, "catalog.d")
        os.mkdir(sysdir)
        shutil.copy(os.path.join(data, "site", "50-site.json"), sysdir)
        shutil.copy(os.path.join(data, "override", "10-queues.json"), sysdir)

        # empty: the built-in catalog only
        builtin = modes(system="")
        check(SITE_MODE not in builtin, "a site mode with GUESTABI_SYSTEM_CATALOG empty")
        check_eq(builtin[V1]["max_queue_size"], 256, "built-in v1's max_queue_size")
        check_eq(builtin[V1]["origin"], "builtin:10-virtio-net.json", "built-in v1's origin")
        check(SITE_PLATFORM not in platforms(system=""), "a site platform with no system dir")

        # a directory: its modes and platforms are added, its entries override built-in ones
        got = modes(system=sysdir)
        check(SITE_MODE in got, "GUESTABI_SYSTEM_CATALOG=%s adds no %s: %s" % (
            sysdir, SITE_MODE, sorted(got)))
        check_in("50-site.json", got[SITE_MODE]["origin"], "the site mode's origin")
        check_eq(got[SITE_MODE]["max_queue_pairs"], 8, "the site mode's max_queue_pairs")
        check(SITE_PLATFORM in platforms(system=sysdir), "the system dir's platform is missing")
        check_eq(got[V1]["max_queue_size"], 512, "v1's max_queue_size overridden by the system")
        check_in("10-queues.json", got[V1]["origin"], "the overriding v1's origin")
        check_eq(len(got), len(builtin) + 1, "number of modes with the system dir")

        # --catalog (layer 2) overrides the system directory (layer 1)
        layer2 = os.path.join(work, "layer2")
        os.mkdir(layer2)
        with open(os.path.join(sysdir, "10-queues.json")) as f:
            doc = json.load(f)
        doc["modes"][0]["max_queue_size"] = 128
        with open(os.path.join(layer2, "10-queues.json"), "w") as f:
            json.dump(doc, f)
        got = modes(system=sysdir, extra=["--catalog", layer2])
        check_eq(got[V1]["max_queue_size"], 128, "v1's max_queue_size with --catalog on top")
        check(SITE_MODE in got, "the system dir's mode is lost under --catalog")

        # a bad document in the system directory is an error that names it
        with open(os.path.join(sysdir, "60-bad.json"), "w") as f:
            f.write("{\"schema\": \"guestabi.catalog/1\", \"modes\": [")
        st, out, err = guestabi(["modes"], system=sysdir)
        check_eq(st, 2, "exit status with a malformed system catalog document")
        check_in("60-bad.json", err, "the error")
        os.unlink(os.path.join(sysdir, "60-bad.json"))

        # unset: /etc/guestabi/catalog.d, in a mount namespace whose /etc is an overlay
        if os.geteuid() != 0:
            vmlib.skip("needs root for a mount namespace with /etc/guestabi/catalog.d")
        upper, wd = os.path.join(work, "upper"), os.path.join(work, "work")
        os.mkdir(upper)
        os.mkdir(wd)
        setup = ("mount --make-rprivate / && mount -t overlay overlay -o "
                 "lowerdir=/etc,upperdir=%s,workdir=%s /etc && mkdir -p /etc/guestabi/catalog.d "
                 "&& cp %s/50-site.json /etc/guestabi/catalog.d/ && exec \"$@\"" % (
                     upper, wd, sysdir))
        prefix = ["unshare", "--mount", "--", "sh", "-c", setup, "sh"]
        r = subprocess.run(prefix + ["true"], capture_output=True, text=True)
        if r.returncode != 0:
            vmlib.skip("no mount namespace with an overlay on /etc: " + r.stderr.strip())
        got = modes(system=None, prefix=prefix)
        check(SITE_MODE in got, "/etc/guestabi/catalog.d/50-site.json is not read by default")
        check_eq(got[SITE_MODE]["origin"], "/etc/guestabi/catalog.d/50-site.json",
                 "the site mode's origin")
        check(SITE_MODE not in modes(system="", prefix=prefix),
              "/etc/guestabi/catalog.d is read with GUESTABI_SYSTEM_CATALOG empty")
        check(not os.path.exists("/etc/guestabi/catalog.d/50-site.json"),
              "the test's /etc/guestabi/catalog.d leaked out of its mount namespace")
        vmlib.log("ok: the system catalog directory adds and overrides entries; "
                  "/etc/guestabi/catalog.d is the default, empty means none")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
