#!/usr/bin/env python3
"""guestabid's JSON-RPC: conformance (JSON-RPC 2.0 errors, batches, notifications), the
decisions answered as the CLI answers them, and bad input: malformed JSON, a 100 MB request,
deep nesting, unknown methods, wrong parameter types, a client dribbling a byte at a time, 64
clients at once, a client that never reads, a user who is not allowed. Each gets its error or is
dropped, and the agent keeps serving the others."""

import json
import os
import socket
import subprocess
import threading
import time

import agentlib
import vmlib
from agentlib import check

SRC = vmlib.SOURCE_ROOT
EX = os.path.join(SRC, "docs/examples")


def cli(*args):
    g = vmlib.build_bin("src/cli/guestabi")
    r = subprocess.run([g] + list(args), capture_output=True, text=True,
                       env=dict(os.environ, GUESTABI_SYSTEM_CATALOG=""))
    return r.returncode, r.stdout, r.stderr


def load(name):
    with open(os.path.join(EX, name)) as f:
        return json.load(f)


def rss_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def read_all(s):
    """Everything the agent sends until it hangs up (or goes quiet for the timeout)."""
    data = b""
    try:
        while True:
            k = s.recv(1 << 16)
            if not k:
                break
            data += k
    except (ConnectionResetError, socket.timeout):
        pass
    s.close()
    return data


def still_serving(agent):
    """A fresh client gets a correct answer, fast."""
    t0 = time.monotonic()
    res = agent.call("rpc.methods")
    dt = time.monotonic() - t0
    check(agent.alive(), "the agent died:\n" + agent.output()[-3000:])
    check(any(m["name"] == "port.add" for m in res["methods"]), "rpc.methods: %s" % res)
    check(dt < 2.0, "a fresh client waited %.2fs" % dt)


def conformance(agent):
    c = agent.client()
    res = c.call("rpc.methods")
    names = [m["name"] for m in res["methods"]]
    for want in ("rpc.methods", "host.caps", "host.platforms", "modes.list", "abi.check",
                 "abi.pick", "port.add", "port.del", "port.list", "port.get",
                 "events.subscribe"):
        check(want in names, "rpc.methods lacks %s: %s" % (want, names))
    for m in res["methods"]:
        check(m["params"] and m["result"], "method %s undocumented: %s" % (m["name"], m))

    def raw(line):
        c.send_raw(line + b"\n")
        return c.read_reply()

    r = raw(b'{"jsonrpc": "2.0", "id": 1, "method": "rpc.methods"')
    check(r.get("error", {}).get("code") == -32700 and r["id"] is None, "truncated JSON: %s" % r)
    # the connection goes on after a parse error
    check(c.call("modes.list", {"class": "virtio-net"})["modes"], "after a parse error")
    for bad, why in ((b"[]", "empty batch"), (b"42", "not an object"),
                     (b'{"jsonrpc": "1.0", "id": 3, "method": "rpc.methods"}', "version"),
                     (b'{"jsonrpc": "2.0", "id": {"a": 1}, "method": "rpc.methods"}', "id"),
                     (b'{"jsonrpc": "2.0", "id": 4, "method": 7}', "method type"),
                     (b'{"jsonrpc": "2.0", "id": 5, "method": "x", "extra": 1}', "extra member"),
                     (b'{"jsonrpc": "2.0", "id": 6, "id": 7, "method": "x"}', "duplicate key")):
        r = raw(bad)
        code = r.get("error", {}).get("code")
        check(code in (-32600, -32700), "%s: %s" % (why, r))
    r = raw(b'{"jsonrpc": "2.0", "id": 8, "method": "no.such"}')
    check(r["error"]["code"] == -32601 and r["id"] == 8 and "no.such" in r["error"]["data"]
          ["reason"], "unknown method: %s" % r)
    # a notification (no id) is not answered: the next reply is the next request's
    c.send_raw(b'{"jsonrpc": "2.0", "method": "rpc.methods"}\n')
    check(c.call_raw("rpc.methods")["id"] == c.next_id - 1, "a notification was answered")
    # a batch: replies for the requests, none for the notification, in one line
    r = raw(json.dumps([
        {"jsonrpc": "2.0", "id": "a", "method": "modes.list", "params": {"class": "virtio-blk"}},
        {"jsonrpc": "2.0", "method": "rpc.methods"},
        {"jsonrpc": "2.0", "id": "b", "method": "no.such"},
        5]).encode())
    check(isinstance(r, list) and len(r) == 3, "batch: %s" % r)
    check(r[0]["id"] == "a" and r[0]["result"]["modes"][0]["class"] == "virtio-blk", str(r[0]))
    check(r[1]["id"] == "b" and r[1]["error"]["code"] == -32601, str(r[1]))
    check(r[2]["error"]["code"] == -32600, str(r[2]))
    r = raw(json.dumps([{"jsonrpc": "2.0", "id": i, "method": "rpc.methods"}
                        for i in range(65)]).encode())
    check(r["error"]["code"] == -32600 and "batch" in r["error"]["data"]["reason"], str(r))

    # wrong parameter types and values: -32602 naming the key
    for method, params, path in (
            ("modes.list", {"class": 5}, "params.class"),
            ("modes.list", {"class": "virtio-gpu"}, "params.class"),
            ("modes.list", {"klass": "virtio-net"}, "params.klass"),
            ("host.caps", {"refresh": "yes"}, "params.refresh"),
            ("port.add", {"class": "virtio-net", "socket": "/tmp/x", "backing": {}}, "params.id"),
            ("port.add", {"id": "a/b", "class": "virtio-net", "socket": "/tmp/x",
                          "backing": {"loopback": True}}, "params.id"),
            ("port.add", {"id": "p", "class": "virtio-net", "socket": "relative",
                          "backing": {"loopback": True}}, "params.socket"),
            ("port.add", {"id": "p", "class": "virtio-net", "socket": "/tmp/p.sock",
                          "backing": {"disk": "/tmp/d"}}, "params.backing.disk"),
            ("port.add", {"id": "p", "class": "virtio-net", "socket": "/tmp/p.sock",
                          "backing": {"tap": "x" * 40}}, "params.backing.tap"),
            ("port.add", {"id": "p", "class": "virtio-blk", "socket": "/tmp/p.sock",
                          "backing": {"ram": 1000}}, "params.backing.ram"),
            ("port.add", {"id": "p", "class": "virtio-net", "socket": "/tmp/p.sock",
                          "mode": "upstream.guestabi-blk.v1", "backing": {"loopback": True}},
             "params.mode"),
            ("port.get", {"id": ["p"]}, "params.id"),
            ("abi.check", {"pin": "vm.json"}, "params.pin"),
            ("abi.pick", {"hosts": {"a": 1}}, "params.hosts")):
        e = c.error(method, params)
        check(e["code"] == -32602 and e["data"]["path"] == path,
              "%s %s: wanted -32602 at %s, got %s" % (method, params, path, e))
    c.send_raw(b'{"jsonrpc": "2.0", "id": 99, "method": "port.list", "params": [1]}\n')
    r = c.read_reply()
    check(r["error"]["code"] == -32602 and r["error"]["data"]["path"] == "params", str(r))
    e = c.error("port.get", {"id": "nope"})
    check(e["code"] == -32000 and e["data"]["path"] == "params.id", str(e))
    # a pin with a mistake deep inside: the path names it
    pin = load("vm-common.json")
    pin["devices"][0]["mode"] = "upstream.no-such.v9"
    e = c.error("abi.check", {"pin": pin})
    check(e["code"] == -32602 and e["data"]["path"].startswith("params.pin: $.devices[0]"),
          "bad pin: %s" % e)
    c.close()
    vmlib.log("ok: JSON-RPC 2.0 conformance, batches, typed parameter errors with paths")


def decisions(agent, workdir):
    caps = agent.call("host.caps")
    check(caps["schema"] == "guestabi.hostcaps/1", "host.caps: %s" % caps.get("schema"))
    names = [b["name"] for b in caps.get("backends", [])]
    check("guestabi-net" in names and "guestabi-blk" in names, "back-ends: %s" % names)
    again = agent.call("host.caps", {"refresh": True})
    check(again["host"] == caps["host"], "refresh changed the host name")
    plat = agent.call("host.platforms")
    check(plat["default"] == (plat["platforms"][0]["name"] if plat["platforms"] else None),
          "host.platforms default: %s" % plat)
    modes = agent.call("modes.list", {"class": "virtio-net"})
    check(modes["default"]["virtio-net"] == modes["modes"][0]["name"] and
          all(m["class"] == "virtio-net" for m in modes["modes"]), "modes.list: %s" % modes)
    # abi.check answers what `guestabi check` answers for the same host document
    hostfile = os.path.join(workdir, "this-host.json")
    with open(hostfile, "w") as f:
        json.dump(caps, f)
    for vm in ("vm-common.json", "vm-newest.json"):
        v = agent.call("abi.check", {"pin": load(vm)})
        st, out, err = cli("--json", "check", "--pin", os.path.join(EX, vm), "--host", hostfile)
        check(st in (0, 1), "guestabi check: %d %s" % (st, err))
        want = json.loads(out)
        check(v == want, "abi.check and guestabi check differ for %s:\n%s\n%s" % (vm, v, want))
        check(v["ok"] == (st == 0), "verdict ok %s, CLI status %d" % (v["ok"], st))
    # abi.pick over two documents, without this host, is `guestabi pick`
    hosts = [load("host-2019.json"), load("host-2024.json")]
    v = agent.call("abi.pick", {"hosts": hosts, "include_this_host": False})
    st, out, err = cli("--json", "pick", os.path.join(EX, "host-2019.json"),
                       os.path.join(EX, "host-2024.json"))
    check(st == 0 and v == json.loads(out), "abi.pick and guestabi pick differ:\n%s\n%s" % (v, out))
    bad = load("host-2019.json")
    bad["backends"] = 3
    e = agent.client().error("abi.pick", {"hosts": [hosts[0], bad]})
    check(e["code"] == -32602 and e["data"]["path"].startswith("params.hosts[1]"), str(e))
    vmlib.log("ok: host.caps, host.platforms, modes.list; abi.check and abi.pick as the CLI")


def big_request(agent):
    """100 MB on one line: the agent reads 1 MiB of it, answers -32600 and hangs up."""
    rss0 = rss_kb(agent.proc.pid)
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(agent.socket)
    s.settimeout(30)
    chunk = b'{"jsonrpc": "2.0", "id": 1, "method": "rpc.methods", "params": {"x": "' + \
        b"A" * (1 << 20)
    sent = 0
    try:
        while sent < 100 << 20:
            s.sendall(chunk if sent == 0 else b"A" * (1 << 20))
            sent += 1 << 20
    except (BrokenPipeError, ConnectionResetError):
        pass
    data = read_all(s)
    check(sent < 100 << 20, "the agent took all 100 MB of one request")
    r = json.loads(data.split(b"\n")[0]) if data else {}
    check(r.get("error", {}).get("code") == -32600 and "longer than" in
          r["error"]["data"]["reason"], "100 MB request: %r" % data[:300])
    check(rss_kb(agent.proc.pid) - rss0 < 32 * 1024, "the agent grew by %d KiB" %
          (rss_kb(agent.proc.pid) - rss0))
    still_serving(agent)
    vmlib.log("ok: a 100 MB request is cut at 1 MiB (%d MiB sent before the agent hung up)" %
              (sent >> 20))


def deep_nesting(agent):
    c = agent.client()
    c.send_raw(b"[" * 100000 + b"\n")
    r = c.read_reply()
    check(r["error"]["code"] == -32600 and "nested deeper" in r["error"]["data"]["reason"], str(r))
    deep = '{"jsonrpc": "2.0", "id": 1, "method": "abi.check", "params": {"pin": ' + \
        '{"a": ' * 40 + "1" + "}" * 40 + "}}"
    c.send_raw(deep.encode() + b"\n")
    r = c.read_reply()
    check(r["error"]["code"] == -32600, str(r))
    # brackets inside strings do not count
    r = c.call_raw("modes.list", {"class": "virtio-net", "x": "[[[[" * 100})
    check(r["error"]["data"]["path"] == "params.x", str(r))
    c.close()
    still_serving(agent)
    vmlib.log("ok: deep nesting refused before parsing")


def slow_client(agent, request_ms):
    """A byte at a time, slower than the request timeout: dropped with -32007; meanwhile others
    are answered at once."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(agent.socket)
    s.settimeout(10)
    req = b'{"jsonrpc": "2.0", "id": 1, "method": "rpc.methods"}\n'
    t0 = time.monotonic()
    dropped = False
    for i, b in enumerate(req):
        try:
            s.send(bytes([b]))
        except (BrokenPipeError, ConnectionResetError):
            dropped = True
            break
        if i == 3:
            still_serving(agent)  # others are served while it dribbles
        time.sleep(request_ms / 1000.0 / 8)
        if time.monotonic() - t0 > 3 * request_ms / 1000.0:
            break
    data = read_all(s)
    r = json.loads(data.split(b"\n")[0]) if data else {}
    check(r.get("error", {}).get("code") == -32007, "slow client got %r (dropped %s)" %
          (data[:200], dropped))
    still_serving(agent)
    vmlib.log("ok: a client dribbling bytes is dropped after %d ms" % request_ms)


def many_clients(agent, n=64):
    clients = [agent.client() for _ in range(n)]
    for i, c in enumerate(clients):
        c.send_raw(json.dumps({"jsonrpc": "2.0", "id": i, "method": "modes.list",
                               "params": {"class": "virtio-net"}}).encode() + b"\n")
    for i, c in enumerate(clients):
        r = c.read_reply()
        check(r["id"] == i and r["result"]["modes"], "client %d: %s" % (i, r))
    for c in clients:
        c.close()
    vmlib.log("ok: %d clients at once, each answered" % n)


def too_many_clients(agent, limit):
    clients = [agent.client() for _ in range(limit)]
    for c in clients:  # every one of them is really accepted
        c.call("rpc.methods")
    extra = agent.client()
    r = extra.read_line()
    check(r["error"]["code"] == -32005 and "too many" in r["error"]["data"]["reason"], str(r))
    extra.close()
    # what a peer can make the agent log is rate-limited: 300 refusals, far fewer lines
    refused = 0
    while refused < 300:
        try:
            agent.client().close()
            refused += 1
        except BlockingIOError:  # the listen backlog is full: let the agent catch up
            time.sleep(0.01)
    time.sleep(0.3)
    lines = agent.output().count("too many clients")
    check(1 <= lines <= 100, "%d log lines for 301 refused clients" % lines)
    clients.pop().close()
    time.sleep(0.2)
    still_serving(agent)
    for c in clients:
        c.close()
    vmlib.log("ok: client %d is refused, and served again once one leaves" % (limit + 1))


def never_reads(agent, max_output):
    """Requests without reading the replies: once the replies queued pass --max-output, the
    client is dropped; the others never notice."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(agent.socket)
    s.settimeout(10)
    req = b'{"jsonrpc": "2.0", "id": 1, "method": "host.caps"}\n' * 50
    reply_size = len(json.dumps(agent.call("host.caps"))) + 40
    sent = 0
    try:
        for _ in range(400):
            s.sendall(req)
            sent += 50
    except (BrokenPipeError, ConnectionResetError, socket.timeout):
        pass
    still_serving(agent)
    data = read_all(s)
    got = data.count(b"\n")
    check(got < sent, "the agent answered all %d requests of a client that did not read" % sent)
    check("does not read" in agent.output() or "overflowed" in agent.output(),
          "no log line for the dropped client")
    still_serving(agent)
    vmlib.log("ok: a client that never reads is dropped (%d of %d replies, %d-byte replies, "
              "%d-byte limit)" % (got, sent, reply_size, max_output))


def as_user(path, user_args, expect):
    """Connect as another user (setpriv) and print the first line the agent sends."""
    code = ("import socket,sys\n"
            "s=socket.socket(socket.AF_UNIX,socket.SOCK_STREAM)\n"
            "try:\n s.connect(sys.argv[1])\nexcept OSError as e:\n print('CONNECT', e.errno); sys.exit(0)\n"
            "try:\n s.sendall(b'{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"rpc.methods\"}\\n')\n"
            "except OSError:\n pass\n"
            "s.settimeout(10)\nd=b''\n"
            "while b'\\n' not in d:\n k=s.recv(65536)\n if not k: break\n d+=k\n"
            "print(d.split(b'\\n')[0].decode())\n")
    r = subprocess.run(["setpriv"] + user_args + ["python3", "-c", code, path],
                       capture_output=True, text=True, timeout=30)
    check(r.returncode == 0, "client as another user failed: %s" % r.stderr)
    return r.stdout.strip()


def permissions(agent, workdir):
    import stat
    mode = stat.S_IMODE(os.stat(agent.socket).st_mode)
    check(mode == 0o660, "socket mode %o" % mode)
    nobody = ["--reuid=65534", "--regid=65534", "--clear-groups"]
    out = as_user(agent.socket, nobody, None)
    check(out.startswith("CONNECT 13"), "nobody connected through mode 0660: %s" % out)
    # the peer-credential check itself: a socket any user may open still refuses them
    os.chmod(agent.socket, 0o666)
    os.chmod(workdir, 0o755)
    out = as_user(agent.socket, nobody, None)
    r = json.loads(out)
    check(r["error"]["code"] == -32006 and "uid 65534" in r["error"]["data"]["reason"], out)
    os.chmod(agent.socket, 0o660)
    # a member of --group is let in
    import grp
    g = grp.getgrnam("nogroup")
    ga = agentlib.Agent(workdir, "grouped", extra=["--group", "nogroup"])
    try:
        check(os.stat(ga.socket).st_gid == g.gr_gid, "socket not owned by the group")
        out = as_user(ga.socket, ["--reuid=65534", "--regid=%d" % g.gr_gid, "--clear-groups"],
                      None)
        r = json.loads(out)
        check("result" in r and r["result"]["methods"], "group member refused: %s" % out)
        out = as_user(ga.socket, ["--reuid=65534", "--regid=65534", "--groups=%d" % g.gr_gid],
                      None)
        check("result" in json.loads(out), "supplementary group member refused: %s" % out)
    finally:
        ga.stop()
    vmlib.log("ok: mode 0660; uid 65534 refused by the peer-credential check; group let in")


def main():
    if os.geteuid() != 0:
        vmlib.skip("needs root (the agent probes taps; other users are tested with setpriv)")
    request_ms, max_output, max_clients = 400, 64 << 10, 80
    with vmlib.Scenario("agent-rpc") as sc:
        agent = agentlib.Agent(sc.dir, extra=["--request-timeout-ms", str(request_ms),
                                              "--max-output", str(max_output),
                                              "--max-clients", str(max_clients)])
        sc.add(agent)
        try:
            conformance(agent)
            decisions(agent, sc.dir)
            deep_nesting(agent)
            big_request(agent)
            slow_client(agent, request_ms)
            many_clients(agent, 64)
            too_many_clients(agent, max_clients)
            never_reads(agent, max_output)
            permissions(agent, sc.dir)
            still_serving(agent)
        except Exception:
            print("--- agent log:\n" + agent.output()[-4000:])
            raise


if __name__ == "__main__":
    main()
