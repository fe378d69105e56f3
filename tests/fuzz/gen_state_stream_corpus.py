#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Writes the seed corpus of fuzz_state_stream from docs/state-stream.md alone (its own
CRC32C, its own encoder): files named ok-* are valid streams, and the unit test checks that
the C reader takes them, so the document and the code cannot drift apart unnoticed.

Each file is one selector byte (fuzz_state_stream.c: bits 0-1 the sink, bit 2 "insist on
guestabi-blk", bits 3-7 how the stream is cut into writes), then the stream.

    tests/fuzz/gen_state_stream_corpus.py tests/fuzz/corpus/state_stream
"""
import os
import struct
import sys


def crc32c(data, crc=0):
    crc ^= 0xFFFFFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF


def header(dtype, version, size, fmt=1, hsize=128, incompat=0, compat=0):
    body = b"GABISTAT" + struct.pack("<HHIII Q", fmt, hsize, incompat, compat, 0, size)
    body += dtype.encode().ljust(32, b"\0") + version.encode().ljust(16, b"\0")
    body = body.ljust(hsize - 4, b"\0")
    return body + struct.pack("<I", crc32c(body))


def trailer(payload):
    t = b"GABI-END" + struct.pack("<I", crc32c(payload))
    return t + struct.pack("<I", crc32c(t))


def stream(dtype, version, payload, **kw):
    return header(dtype, version, len(payload), **kw) + payload + trailer(payload)


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    pay = bytes((i * 7 + 3) & 0xFF for i in range(300))
    big = bytes((i * 131 + i // 256) & 0xFF for i in range(70000))
    files = {
        # valid streams, one per sink kind and cut
        "ok-memory": bytes([0x00]) + stream("guestabi-blk", "1", pay),
        "ok-copy-typed": bytes([0x05]) + stream("guestabi-blk", "2.0", pay),
        "ok-file": bytes([0x0a]) + stream("guestabi-net", "1", big),
        "ok-mixed-typed": bytes([0x17]) + stream("guestabi-blk", "1", big),
        "ok-empty-payload": bytes([0x01]) + stream("guestabi-blk", "1", b""),
        "ok-compat-flag": bytes([0x02]) + stream("guestabi-blk", "1", pay, compat=0x80),
        "ok-long-header": bytes([0x03]) + stream("guestabi-blk", "1", pay, hsize=256),
        # refusals
        "bad-magic": bytes([0x00]) + b"GABISTAX" + stream("guestabi-blk", "1", pay)[8:],
        "bad-header-crc": bytes([0x00]) + stream("guestabi-blk", "1", pay)[:40] + b"X"
        + stream("guestabi-blk", "1", pay)[41:],
        "format-2": bytes([0x00]) + stream("guestabi-blk", "1", pay, fmt=2),
        "incompat-flag": bytes([0x00]) + stream("guestabi-blk", "1", pay, incompat=1),
        "wrong-type": bytes([0x04]) + stream("guestabi-net", "1", pay),
        "refused-version": bytes([0x00]) + stream("guestabi-blk", "5.3", pay),
        "too-large": bytes([0x00]) + header("guestabi-blk", "1", 1 << 40) + pay,
        "truncated-payload": bytes([0x08]) + stream("guestabi-blk", "1", big)[:5000],
        "truncated-trailer": bytes([0x00]) + stream("guestabi-blk", "1", pay)[:-3],
        "oversize": bytes([0x00]) + stream("guestabi-blk", "1", pay) + b"\0",
        "bad-payload-crc": bytes([0x01]) + stream("guestabi-blk", "1", pay)[:200] + b"\xff"
        + stream("guestabi-blk", "1", pay)[201:],
        "bad-trailer": bytes([0x00]) + stream("guestabi-blk", "1", pay)[:-16] + b"GABI-EN!"
        + trailer(pay)[8:],
        "header-size-odd": bytes([0x00]) + stream("guestabi-blk", "1", pay, hsize=132),
        "empty-stream": bytes([0x00]),
    }
    for name, data in files.items():
        with open(os.path.join(out, name), "wb") as f:
            f.write(data)


if __name__ == "__main__":
    main()
