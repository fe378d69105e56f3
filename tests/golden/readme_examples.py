#!/usr/bin/env python3
"""The README's examples are the program's output: every `$ guestabi ...` line in an indented
block of README.md that reads only docs/examples files (or no file) is run, and the lines
below it must be what it prints. An excerpt may leave lines out only where it says so: a line
"..." stands for any number of lines, a line ending in "..." for the rest of a longer line;
elsewhere the lines follow each other as the program prints them, up to the end.

Usage: readme_examples.py GUESTABI SOURCE_ROOT"""

import os
import shlex
import subprocess
import sys

guestabi, root = sys.argv[1:3]
# what depends only on the documents: not the probes of this machine, not a back-end, not a
# libvirt domain or the agent
RUNNABLE = {"pick", "check", "filter", "match", "modes", "platforms", "device-types"}


def examples(lines):
    """(line number, argv, expected lines) of each runnable example."""
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("    $ guestabi "):
            command, j = line[len("    $ "):], i + 1
            while command.endswith("\\") and j < len(lines):  # a command continued
                command = command[:-1] + " " + lines[j].strip()
                j += 1
            argv = shlex.split(command, comments=True)
            expected = []
            while j < len(lines) and lines[j].startswith("    ") and \
                    not lines[j].startswith("    $ "):
                expected.append(lines[j][4:])
                j += 1
            files = [a for a in argv[2:] if "/" in a or a.endswith(".json")]
            live = "--domain" in argv or any(a.startswith("@") for a in argv)  # libvirt, agent
            if argv[1] in RUNNABLE and not live and \
                    all(f.startswith(("docs/examples/", "tests/data/")) for f in files):
                yield i + 1, argv, expected
            i = j
        else:
            i += 1


def matches(expected, actual):
    """Whether the excerpt is faithful to the output; else the first line that is not."""
    def line_ok(e, a):
        if e.endswith("...") and e.strip() != "...":
            return a.startswith(e[:-3].rstrip(", ").rstrip())
        return e == a

    def walk(ei, ai):
        if ei == len(expected):
            return None if ai == len(actual) else "the output goes on: %r" % actual[ai]
        if expected[ei].strip() == "...":
            for k in range(ai, len(actual) + 1):
                if walk(ei + 1, k) is None:
                    return None
            return "nothing in the output follows the \"...\" before %r" % (
                expected[ei + 1] if ei + 1 < len(expected) else "the end")
        if ai < len(actual) and line_ok(expected[ei], actual[ai]):
            return walk(ei + 1, ai + 1)
        return "README %r, program %r" % (expected[ei], actual[ai] if ai < len(actual) else
                                          "(end of output)")
    return walk(0, 0)


def main():
    with open(os.path.join(root, "README.md")) as f:
        lines = f.read().split("\n")
    n = failed = 0
    for lineno, argv, expected in examples(lines):
        n += 1
        r = subprocess.run([guestabi] + argv[1:], cwd=root, capture_output=True, text=True,
                           env=dict(os.environ, GUESTABI_SYSTEM_CATALOG=""), timeout=60)
        actual = (r.stdout + r.stderr).rstrip("\n").split("\n")
        why = matches(expected, actual)
        print("%s %d - README.md:%d %s%s" % ("ok" if why is None else "not ok", n, lineno,
                                            " ".join(argv), "" if why is None else ": " + why))
        failed += why is not None
    print("1..%d" % n)
    if n == 0:
        print("no runnable example found in README.md")
        sys.exit(1)
    sys.exit(1 if failed else 0)


main()
