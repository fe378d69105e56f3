#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Writes the packed-ring seeds of fuzz_vhost (files packed-*): message streams that negotiate
VIRTIO_F_RING_PACKED and start vrings on a packed descriptor ring in the fuzzer's memory
(direct chains, an indirect table, NEXT chains around the whole ring, descriptors of the
other wrap counter), with bases that carry both wrap counters, one naming a slot beyond the
ring, and a stop and restart through GET/SET_VRING_BASE.

Input layout (fuzz_vhost.c): [flags][mem_len: u16 LE][mem bytes][messages]; flags bit 0
attaches fds. The mem bytes repeat over the 1 MiB guest memory, so the 64-slot ring at gpa 0
(1 KiB) and the indirect table at 0x800 are what every 4 KiB page holds.

    tests/fuzz/gen_vhost_packed_corpus.py tests/fuzz/corpus/vhost
"""
import os
import struct
import sys

GET_FEATURES, SET_FEATURES, SET_OWNER = 1, 2, 3
SET_MEM_TABLE, SET_VRING_NUM, SET_VRING_ADDR, SET_VRING_BASE = 5, 8, 9, 10
GET_VRING_BASE, SET_VRING_KICK = 11, 12
GET_PROTOCOL_FEATURES, SET_PROTOCOL_FEATURES, SET_VRING_ENABLE = 15, 16, 18

PF_MQ, PF_REPLY_ACK = 0, 3
F_INDIRECT, F_EVENT_IDX, F_PROTOCOL_FEATURES, F_VERSION_1, F_RING_PACKED = 28, 29, 30, 32, 34
UADDR = 0x7F0000000000
NEXT, WRITE, INDIRECT, AVAIL, USED = 1, 2, 4, 1 << 7, 1 << 15
NUM = 64


def msg(request, payload=b"", flags=1):
    return struct.pack("<III", request, flags, len(payload)) + payload


def u64(v):
    return struct.pack("<Q", v)


def desc(addr, length, ident, flags):
    return struct.pack("<QIHH", addr, length, ident, flags)


def negotiate(features):
    pf = (1 << PF_MQ) | (1 << PF_REPLY_ACK)
    return (msg(GET_FEATURES) + msg(GET_PROTOCOL_FEATURES) + msg(SET_PROTOCOL_FEATURES, u64(pf))
            + msg(SET_OWNER) + msg(SET_FEATURES, u64(features)))


def start(index, base, desc_off):
    """vring index on the ring at UADDR + desc_off, driver and device areas of its own"""
    return (msg(SET_VRING_NUM, struct.pack("<II", index, NUM))
            + msg(SET_VRING_BASE, struct.pack("<II", index, base))
            + msg(SET_VRING_ADDR, struct.pack("<IIQQQQ", index, 0, UADDR + desc_off,
                                              UADDR + desc_off + 0x2000,
                                              UADDR + desc_off + 0x1000, 0))
            + msg(SET_VRING_KICK, u64(index))
            + msg(SET_VRING_ENABLE, struct.pack("<II", index, 1)))


def stop(index):
    return msg(SET_VRING_ENABLE, struct.pack("<II", index, 0)) + msg(
        GET_VRING_BASE, struct.pack("<II", index, 0))


def ring(wrap=True, loop=False, hostile=True):
    av = (AVAIL if wrap else USED)
    out = b""
    if loop:
        out = b"".join(desc(0x10000, 0, 1, NEXT | av) for _ in range(NUM))
    else:
        out += desc(0x10000, 64, 0, av)                                 # one readable
        out += desc(0x11000, 32, 5, NEXT | av) + desc(0x12000, 128, 5, WRITE | av)
        out += desc(0x800, 48, 7, INDIRECT | av)                        # a table of 3
        out += desc(0x13000, 1500, 9, WRITE | av)                       # one writable
        out += desc(0xFFFC0, 64, 10, av)                                # up to the end
        out += desc(0x100000 if hostile else 0x18000, 64, 11, av)       # beyond memory
        out += b"".join(desc(0x14000 + 64 * i, 64, 12 + i, av) for i in range(20))
        out += bytes(16 * (NUM - 26))                                   # not available
    table = desc(0x15000, 20, 0, 0) + desc(0x16000, 20, 0, 0) + desc(0x17000, 100, 0, WRITE)
    mem = out + bytes(0x800 - len(out)) + table
    return mem + bytes(4096 - len(mem))


def seed(flags, mem, messages):
    return bytes([flags]) + struct.pack("<H", len(mem)) + mem + messages


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    all_f = ((1 << F_INDIRECT) | (1 << F_EVENT_IDX) | (1 << F_PROTOCOL_FEATURES)
             | (1 << F_VERSION_1) | (1 << F_RING_PACKED))
    region = struct.pack("<QQQQ", 0, 1 << 20, UADDR, 0)
    mem_table = msg(SET_MEM_TABLE, struct.pack("<II", 1, 0) + region)
    fresh = 0x80008000
    both = start(0, fresh, 0) + start(1, fresh, 0x20000)
    files = {
        "packed-traffic": seed(1, ring(hostile=False), negotiate(all_f) + mem_table + both
                               + stop(0) + stop(1) + start(0, 0x80048004, 0)
                               + start(1, 0x00100010, 0x20000)),
        "packed-no-event-idx": seed(1, ring(), negotiate(all_f & ~(1 << F_EVENT_IDX))
                                    + mem_table + both),
        "packed-no-indirect": seed(1, ring(), negotiate(all_f & ~(1 << F_INDIRECT))
                                   + mem_table + both),
        "packed-loop": seed(1, ring(loop=True), negotiate(all_f) + mem_table + both),
        "packed-wrap0": seed(1, ring(wrap=False), negotiate(all_f) + mem_table
                             + start(0, 0, 0) + start(1, 0x00050005, 0x20000)),
        "packed-bad-base": seed(1, ring(), negotiate(all_f) + mem_table
                                + start(0, 0x00FF00FF, 0) + start(1, 0x80408040, 0x20000)),
        "packed-split-base": seed(1, ring(), negotiate(all_f & ~(1 << F_RING_PACKED))
                                  + mem_table + start(0, fresh, 0)),
    }
    for name, data in files.items():
        with open(os.path.join(out, name), "wb") as f:
            f.write(data)


if __name__ == "__main__":
    main()
