#!/usr/bin/env python3
"""Seed inputs for fuzz_blk.c: [flags][n_avail][guest memory from gpa 0]. A split ring of 16
at 0x000 (descriptors), 0x100 (avail), 0x140 (used); request headers, data and status bytes
from 0x200. Usage: make_blk_corpus.py OUTDIR"""

import os
import struct
import sys

NEXT, WRITE, INDIRECT = 1, 2, 4


def image(chains, flags=0, extra=()):
    """chains: lists of (gpa, len, flags) descriptors; each chain's descriptors are laid out in
    order in the table, linked with NEXT. extra: (gpa, bytes) to place."""
    mem = bytearray(0xa00)
    slot, heads = 0, []
    for chain in chains:
        heads.append(slot)
        for k, (gpa, length, fl) in enumerate(chain):
            nxt = slot + 1 if k + 1 < len(chain) else 0
            fl = fl | (NEXT if k + 1 < len(chain) else 0)
            struct.pack_into("<QIHH", mem, 16 * slot, gpa, length, fl, nxt)
            slot += 1
    for i, h in enumerate(heads):
        struct.pack_into("<H", mem, 0x100 + 4 + 2 * i, h)
    for gpa, data in extra:
        mem[gpa:gpa + len(data)] = data
    return bytes([flags, len(chains)]) + bytes(mem)


def hdr(t, sector):
    return struct.pack("<IIQ", t, 0, sector)


def rng(sector, n, fl=0):
    return struct.pack("<QII", sector, n, fl)


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    cases = {}
    rw = [(0x200, 16, 0), (0x400, 1024, WRITE), (0x300, 1, WRITE)]
    cases["read"] = image([rw], extra=[(0x200, hdr(0, 3))])
    wr = [(0x200, 16, 0), (0x400, 1024, 0), (0x300, 1, WRITE)]
    cases["write"] = image([wr], extra=[(0x200, hdr(1, 120)), (0x400, b"\x5a" * 1024)])
    cases["write-file"] = image([wr], flags=1, extra=[(0x200, hdr(1, 7))])
    fl = [(0x200, 16, 0), (0x300, 1, WRITE)]
    cases["flush"] = image([fl], extra=[(0x200, hdr(4, 0))])
    gid = [(0x200, 16, 0), (0x400, 20, WRITE), (0x300, 1, WRITE)]
    cases["get-id"] = image([gid], flags=1, extra=[(0x200, hdr(8, 0))])
    dz = [(0x200, 16, 0), (0x400, 32, 0), (0x300, 1, WRITE)]
    cases["discard"] = image([dz], extra=[(0x200, hdr(11, 0)), (0x400, rng(8, 8) + rng(64, 2))])
    cases["write-zeroes"] = image([dz], flags=1,
                                  extra=[(0x200, hdr(13, 0)), (0x400, rng(0, 16, 1) + rng(99, 1))])
    past = [(0x200, 16, 0), (0x400, 512, WRITE), (0x300, 1, WRITE)]
    cases["past-end"] = image([past], extra=[(0x200, hdr(0, 128))])
    cases["no-status"] = image([[(0x200, 16, 0), (0x400, 512, 0)]], extra=[(0x200, hdr(1, 0))])
    # an indirect chain: the table at 0x800
    table = bytearray()
    for k, (gpa, length, f) in enumerate(rw):
        table += struct.pack("<QIHH", gpa, length, f | (NEXT if k < 2 else 0), k + 1 if k < 2 else 0)
    cases["indirect"] = image([[(0x800, len(table), INDIRECT)]],
                              extra=[(0x200, hdr(0, 1)), (0x800, bytes(table))])
    cases["three"] = image([rw, fl, gid], flags=1, extra=[(0x200, hdr(0, 5))])
    for name, data in cases.items():
        with open(os.path.join(out, name), "wb") as f:
            f.write(data)


if __name__ == "__main__":
    main()
