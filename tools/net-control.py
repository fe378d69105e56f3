#!/usr/bin/env python3
"""One request to a guestabi-net or guestabi-blk control socket (--control PATH): one line out,
one JSON line back.

    tools/net-control.py SOCKET REQUEST [PATH ...]

Without PATHs it prints the reply; with them, the value at each dotted path (a list index is a
number: ports.0.features), space-separated: a string as it is, anything else as JSON. Exits 1 when the socket does not answer within 5 s,
the reply is longer than 1 MiB or not JSON, or a path is not in it."""
import json
import socket
import sys

MAX_REPLY = 1 << 20


def request(path, line, timeout=5.0):
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(timeout)
        s.connect(path)
        s.sendall(line.encode() + b"\n")
        buf = b""
        while not buf.endswith(b"\n"):
            chunk = s.recv(65536)
            if not chunk:
                break
            buf += chunk
            if len(buf) > MAX_REPLY:
                raise ValueError("reply longer than %d bytes" % MAX_REPLY)
    return json.loads(buf)


def at(doc, dotted):
    for key in dotted.split("."):
        doc = doc[int(key)] if isinstance(doc, list) else doc[key]
    return doc


def main():
    if len(sys.argv) < 3:
        sys.stderr.write(__doc__)
        return 2
    try:
        reply = request(sys.argv[1], sys.argv[2])
        values = [at(reply, p) for p in sys.argv[3:]]
    except (OSError, ValueError, KeyError, IndexError, TypeError) as e:
        print("net-control: %s: %r: %s" % (sys.argv[1], sys.argv[2], e), file=sys.stderr)
        return 1
    print(" ".join(v if isinstance(v, str) else json.dumps(v) for v in values)
          if values else json.dumps(reply))
    return 0


if __name__ == "__main__":
    sys.exit(main())
