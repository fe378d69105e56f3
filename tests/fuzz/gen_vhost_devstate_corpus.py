#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Writes the device-state seeds of fuzz_vhost (files ds-*): message streams that negotiate
DEVICE_STATE and send SET_DEVICE_STATE_FD / CHECK_DEVICE_STATE in the ways that matter
(save, load of a valid and of damaged streams, refusals: a running vring, another phase or
direction, no fd, not negotiated; a second transfer replacing the first).

Input layout (fuzz_vhost.c): [flags][mem_len: u16 LE][mem bytes][messages]; flags bit 0
attaches fds (SET_DEVICE_STATE_FD gets a pipe end; for a load, the mem bytes are the stream
written into it). The device in fuzz_vhost.c has type "fuzz-dev", version 1, 3000 bytes.

    tests/fuzz/gen_vhost_devstate_corpus.py tests/fuzz/corpus/vhost
"""
import os
import struct
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gen_state_stream_corpus import stream  # noqa: E402  (the independent encoder)

GET_FEATURES, SET_FEATURES, SET_OWNER = 1, 2, 3
SET_MEM_TABLE, SET_VRING_NUM, SET_VRING_ADDR, SET_VRING_BASE = 5, 8, 9, 10
GET_VRING_BASE, SET_VRING_KICK = 11, 12
GET_PROTOCOL_FEATURES, SET_PROTOCOL_FEATURES = 15, 16
SET_DEVICE_STATE_FD, CHECK_DEVICE_STATE = 42, 43

PF_MQ, PF_LOG_SHMFD, PF_REPLY_ACK, PF_DEVICE_STATE = 0, 1, 3, 19
F_PROTOCOL_FEATURES, F_VERSION_1 = 30, 32
UADDR = 0x7F0000000000


def msg(request, payload=b"", flags=1):
    return struct.pack("<III", request, flags, len(payload)) + payload


def u64(v):
    return struct.pack("<Q", v)


def negotiate(pf=(1 << PF_MQ) | (1 << PF_LOG_SHMFD) | (1 << PF_REPLY_ACK) |
              (1 << PF_DEVICE_STATE)):
    return (msg(GET_FEATURES) + msg(GET_PROTOCOL_FEATURES) + msg(SET_PROTOCOL_FEATURES, u64(pf))
            + msg(SET_OWNER) + msg(SET_FEATURES,
                                   u64((1 << F_PROTOCOL_FEATURES) | (1 << F_VERSION_1))))


def transfer(direction, phase=0):
    return msg(SET_DEVICE_STATE_FD, struct.pack("<II", direction, phase))


def start_vring0():
    region = struct.pack("<QQQQ", 0, 1 << 20, UADDR, 0)
    return (msg(SET_MEM_TABLE, struct.pack("<II", 1, 0) + region)
            + msg(SET_VRING_NUM, struct.pack("<II", 0, 256))
            + msg(SET_VRING_BASE, struct.pack("<II", 0, 0))
            + msg(SET_VRING_ADDR, struct.pack("<IIQQQQ", 0, 0, UADDR, UADDR + 0x2000,
                                              UADDR + 0x1000, 0))
            + msg(SET_VRING_KICK, u64(0)))


def seed(flags, mem, messages):
    return bytes([flags]) + struct.pack("<H", len(mem)) + mem + messages


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    state = bytes((i * 29 + 5) & 0xFF for i in range(3000))
    good = stream("fuzz-dev", "1", state)
    check = msg(CHECK_DEVICE_STATE)
    files = {
        "ds-save": seed(1, b"", negotiate() + transfer(0) + check + check),
        "ds-load": seed(1, good, negotiate() + transfer(1) + check),
        "ds-load-v2": seed(1, stream("fuzz-dev", "2", state), negotiate() + transfer(1) + check),
        "ds-load-type": seed(1, stream("guestabi-net", "1", state),
                             negotiate() + transfer(1) + check),
        "ds-load-truncated": seed(1, good[:2000], negotiate() + transfer(1) + check),
        "ds-load-too-large": seed(1, stream("fuzz-dev", "1", state + b"x"),
                                  negotiate() + transfer(1) + check),
        "ds-refusals": seed(1, b"", negotiate() + transfer(0, 1) + transfer(2) + check
                            + start_vring0() + transfer(0) + check
                            + msg(GET_VRING_BASE, struct.pack("<II", 0, 0))
                            + transfer(0) + check),
        "ds-no-fd": seed(0, b"", negotiate() + transfer(0) + check),
        "ds-replaced": seed(1, good, negotiate() + transfer(0) + transfer(1) + check
                            + start_vring0() + check),
        "ds-not-negotiated": seed(1, b"", negotiate(1 << PF_MQ) + transfer(0) + check),
        "ds-check-first": seed(1, b"", negotiate() + check + transfer(1) + check),
    }
    for name, data in files.items():
        with open(os.path.join(out, name), "wb") as f:
            f.write(data)


if __name__ == "__main__":
    main()
