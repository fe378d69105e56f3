#!/usr/bin/env python3
"""`--json` of filter, match, platforms, device-types and catalog validate (README: "--json on
every command for scripts"): each prints one JSON document that parses, whose "schema" names
it, that holds the documented members, and that says what the plain output and the exit
status say (docs/formats.md: the verdict; docs/guestabi.1)."""

import json
import os
import subprocess

from checks import CheckFailed, check, check_eq, check_in
import vmlib

EX = os.path.join(vmlib.SOURCE_ROOT, "docs", "examples")
H2019, H2024 = os.path.join(EX, "host-2019.json"), os.path.join(EX, "host-2024.json")
PIN = os.path.join(EX, "vm-newest.json")
VERDICT = {"schema", "operation", "ok", "choices", "reasons"}
REASON = {"host", "device", "key", "wanted", "offered", "message"}


def guestabi(*args):
    r = subprocess.run([vmlib.build_bin("src/cli/guestabi")] + list(args), capture_output=True,
                       text=True, env=dict(os.environ, GUESTABI_SYSTEM_CATALOG=""),
                       cwd=vmlib.SOURCE_ROOT)
    return r.returncode, r.stdout, r.stderr


def document(schema, *args):
    """guestabi --json ARGS: (exit status, the parsed document), checking its schema."""
    st, out, err = guestabi("--json", *args)
    try:
        doc = json.loads(out)
    except ValueError as e:
        raise CheckFailed("guestabi --json %s: not JSON (%s):\n%s%s" % (
            " ".join(args), e, out, err))
    check(isinstance(doc, dict), "not an object: %r" % doc)
    check_eq(doc.get("schema"), schema, "schema of guestabi --json %s" % " ".join(args))
    return st, doc


def listing(schema, key, members, *args, top=()):
    """A listing (guestabi --json ARGS, exit 0): its entries, each checked for members; top
    names the document's members beside schema and the listing."""
    st, doc = document(schema, *args)
    check_eq(st, 0, "guestabi --json %s: exit status" % " ".join(args))
    check_eq(set(doc), {"schema", key} | set(top), "the members of %s" % schema)
    for e in doc[key]:
        check(members <= set(e), "an entry of %s lacks %s: %s" % (schema, members - set(e), e))
    return doc[key]


def check_verdict(doc, operation, st):
    check_eq(set(doc), VERDICT, "the verdict's members")
    check_eq(doc["operation"], operation, "the verdict's operation")
    check_eq(doc["ok"], st == 0, "the verdict's ok against exit status %d" % st)
    for c in doc["choices"]:
        check_eq(set(c), {"subject", "key", "value"}, "a choice's members")
    for r in doc["reasons"]:
        check_eq(set(r), REASON, "a reason's members")
        check(r["message"], "a reason without a message: %r" % r)
    check(doc["ok"] == (not doc["reasons"]), "ok and reasons disagree: %r" % doc)


def main():
    # filter: the hosts that can take the VM, the same as the plain output, the same exit
    for hosts, want in (([H2019, H2024], ["rack9-2024"]), ([H2019], [])):
        st, doc = document("guestabi.filter/1", "filter", "--pin", PIN, *hosts)
        pst, plain, _ = guestabi("filter", "--pin", PIN, *hosts)
        check_eq(set(doc), {"schema", "vm", "hosts"}, "filter's members")
        check_eq(doc["vm"], "vm-web", "filter's vm")
        check_eq(doc["hosts"], want, "filter's hosts")
        check_eq(st, 0 if want else 1, "filter's exit status")
        check_eq(pst, st, "the plain filter's exit status")
        if want:
            check_eq(doc["hosts"], plain.splitlines(), "filter's hosts against its plain output")

    # match: a verdict, ok or not with every reason
    st, doc = document("guestabi.verdict/1", "match", "--version", "6.3", "--loads",
                       "5.3,5.2,5.1")
    check_eq(st, 1, "match 6.3 against 5.x: exit status")
    check_verdict(doc, "match", st)
    check_eq([r["key"] for r in doc["reasons"]], ["state_version"], "match's reasons")
    check_eq(doc["reasons"][0]["wanted"], "6.3", "match's wanted version")
    st, doc = document("guestabi.verdict/1", "match", "--version", "6.9", "--newest", "6.10",
                       "--minimum", "6.2")
    check_eq(st, 0, "match 6.9 in 6.2..6.10: exit status")
    check_verdict(doc, "match", st)
    check_eq([(c["key"], c["value"]) for c in doc["choices"]], [("state_version", "6.9")],
             "match's choices")

    # platforms: every platform of the catalog, or those a host runs, newest first
    plat = {"name", "order", "requires", "features", "origin"}
    platforms = listing("guestabi.platforms/1", "platforms", plat, "platforms")
    ps = {p["name"]: p for p in platforms}
    orders = [p["order"] for p in platforms]
    check_eq(orders, sorted(orders, reverse=True), "platform orders (newest first)")
    check_in("linux-6.2", ps, "the platforms")
    check({"tap.uso4", "tap.uso6"} <= set(ps["linux-6.2"]["requires"]),
          "linux-6.2 does not require USO: %r" % ps["linux-6.2"]["requires"])
    runs = listing("guestabi.platforms/1", "platforms", plat | {"default"}, "platforms", "--host",
                   H2019, top=("host", "kernel", "default"))
    names = [p["name"] for p in runs]
    check("linux-6.2" not in names and "linux-5.14" in names,
          "host-2019 (kernel 5.4, no USO) runs %s" % names)
    check_eq([p["name"] for p in runs if p["default"]], [names[0]],
             "host-2019's default (its newest runnable platform)")

    # device-types: each with its kind and the versions it writes and loads
    types = listing("guestabi.device-types/1", "device_types",
                    {"name", "kind", "writes", "loads", "origin"}, "device-types")
    ts = {t["name"]: t for t in types}
    for t in types:
        check(set(t["writes"]) <= set(t["loads"]), "%s does not load what it writes" % t)
    check_eq(ts["guestabi-blk"]["kind"], "vhost-user", "guestabi-blk's kind")
    check_eq(ts["guestabi-blk"]["loads"], ["1"], "guestabi-blk's loads")

    # catalog validate: ok, and the counts of the catalog it would make
    site = os.path.join(vmlib.SOURCE_ROOT, "tests", "data", "catalogs", "site")
    st, doc = document("guestabi.catalog-validate/1", "catalog", "validate", site)
    check_eq(st, 0, "catalog validate: exit status")
    check_eq(set(doc), {"schema", "ok", "modes", "platforms", "device_types"},
             "catalog validate's members")
    check_eq(doc["ok"], True, "catalog validate's ok")
    counts = tuple(len(listing(schema, key, {"name", "origin"}, "--catalog", site, cmd))
                   for schema, key, cmd in (("guestabi.modes/1", "modes", "modes"),
                                            ("guestabi.platforms/1", "platforms", "platforms"),
                                            ("guestabi.device-types/1", "device_types",
                                             "device-types")))
    check_eq((doc["modes"], doc["platforms"], doc["device_types"]), counts,
             "catalog validate's counts against the listings with --catalog")
    check_eq(doc["platforms"], len(ps) + 1, "platforms counted with the site's one")
    conflict = os.path.join(vmlib.SOURCE_ROOT, "tests", "data", "catalogs", "conflict")
    st, out, err = guestabi("--json", "catalog", "validate", conflict)
    check_eq(st, 2, "catalog validate of a conflicting directory: exit status")
    check_in("already defined differently", err, "the refusal")
    vmlib.log("ok: --json of filter, match, platforms, device-types and catalog validate")


if __name__ == "__main__":
    main()
