"""Host-side networking for the integration tests: taps on a bridge with an address, in
the test's own network namespace so nothing touches the machine's real network."""

import os
import signal
import subprocess
import sys
import tempfile

from checks import check
import vmlib


def sh(*argv, check=True):
    r = subprocess.run(argv, capture_output=True, text=True)
    if check and r.returncode != 0:
        raise RuntimeError("%s: %s" % (" ".join(argv), r.stderr.strip()))
    return r.stdout


def need_root_net():
    if os.geteuid() != 0:
        vmlib.skip("needs root to create taps and bridges")
    if not os.path.exists("/dev/net/tun"):
        vmlib.skip("/dev/net/tun does not exist")
    if subprocess.run(["ip", "-V"], capture_output=True).returncode != 0:
        vmlib.skip("iproute2 is not installed")
    enter_own_netns()


def own_netns_possible():
    return subprocess.run(["unshare", "--net", "true"], capture_output=True).returncode == 0


def enter_own_netns():
    """Run the rest of the test in a network namespace of its own (re-executing it under
    unshare once): its bridges, taps and addresses cannot collide with the machine's, with
    another test running at the same time or with what a killed run left behind."""
    if os.environ.get("GUESTABI_TEST_NETNS") == str(os.getpid()):
        return
    if not own_netns_possible():
        vmlib.skip("cannot create a network namespace (unshare --net)")
    sys.stdout.flush()
    sys.stderr.flush()
    argv = ["unshare", "--net", "--", "sh", "-c",
            'ip link set lo up && GUESTABI_TEST_NETNS=$$ exec "$@"', "sh",
            sys.executable] + sys.argv
    os.execvp(argv[0], argv)


class Bridge:
    """A bridge with an address and the taps a back-end will open by name. Flooding on (ageing
    0) so that a guest that moves between taps stays reachable before it announces itself."""

    def __init__(self, name, cidr, taps):
        check(os.environ.get("GUESTABI_TEST_NETNS") == str(os.getpid()),
              "call need_root_net() first: bridges live in the test's own network namespace")
        self.name = name
        self.taps = list(taps)
        sh("ip", "link", "add", name, "type", "bridge", "ageing_time", "0", "stp_state", "0")
        for t in self.taps:
            sh("ip", "tuntap", "add", "dev", t, "mode", "tap", "vnet_hdr")
            sh("ip", "link", "set", t, "master", name)
            sh("ip", "link", "set", t, "up")
        sh("ip", "addr", "add", cidr, "dev", name)
        sh("ip", "link", "set", name, "up")

    def stop(self):
        for t in self.taps:
            sh("ip", "link", "del", t, check=False)
        sh("ip", "link", "del", self.name, check=False)


def ping(dest, count=3, interval=0.2, timeout=30, size=56, pattern=None):
    """Ping from the host; returns (received, output)."""
    argv = ["ping", "-n", "-c", str(count), "-i", str(interval), "-W", "2", "-w", str(timeout),
            "-s", str(size)]
    if pattern:
        argv += ["-p", pattern]
    r = subprocess.run(argv + [dest], capture_output=True, text=True)
    received = 0
    for line in r.stdout.splitlines():
        if "received" in line:
            received = int(line.split(",")[1].split()[0])
    return received, r.stdout + r.stderr


class BackgroundPing:
    """ping(8) running beside a test, its output going to a file: a pipe nobody reads fills
    after some 800 replies (64 KiB; 13 s at -i 0.01 here) and then stops ping itself, which a
    test would take for a guest that stopped answering."""

    def __init__(self, argv):
        self.out = tempfile.TemporaryFile(mode="w+")
        self.proc = subprocess.Popen(["ping"] + argv, stdout=self.out, stderr=subprocess.STDOUT,
                                     text=True)

    def wait(self, timeout=30):
        """Until ping ends by itself (-c, -w); returns its output."""
        self.proc.wait(timeout=timeout)
        self.out.seek(0)
        text = self.out.read()
        self.out.close()
        return text

    def stop(self, timeout=30):
        """SIGINT (ping prints its summary), then wait; returns its output."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        return self.wait(timeout)
