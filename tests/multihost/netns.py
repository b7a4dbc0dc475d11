"""Hosts as Linux network namespaces, joined by veth pairs to one bridge.

A ``Network`` is a hub namespace holding a bridge (``br0``, the hub's own
address on it) and any number of host namespaces, each with one veth pair
whose host end is ``eth0`` and whose hub end (``to-NAME``) is a port of the
bridge. Nothing is created in the root namespace, so concurrent runs cannot
collide and the machine's own routes are never touched; every address is on
one private /24 that exists only inside these namespaces.

Namespaces are named ``vgt<pid>-<name>``: a run cleans up the namespaces of
runs whose process is gone (killed mid-test) before it makes its own, and its
``close`` kills every process left in its namespaces and deletes them.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import re
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar

from vega_dag.processes import pid_alive

_T = TypeVar("_T")

PREFIX = "vgt"
SUBNET = "10.77.0"
HUB_ADDRESS = f"{SUBNET}.1"
_CLONE_NEWNET = 0x40000000
_STALE = re.compile(rf"^{PREFIX}(\d+)-\S+")


class NetnsUnavailable(Exception):
    """This machine (or user) cannot make network namespaces; says why."""


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    done = subprocess.run(["ip", *args], capture_output=True, text=True)
    if check and done.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {done.stderr.strip()}")
    return done


def prerequisites() -> str | None:
    """Why namespaces cannot be made here, or None when they can."""
    if os.geteuid() != 0:
        return "the multi-host tests make network namespaces: run them as root"
    if shutil.which("ip") is None:
        return "the multi-host tests need `ip` (Debian's iproute2)"
    probe = f"{PREFIX}{os.getpid()}-probe"
    made = _ip("netns", "add", probe, check=False)
    if made.returncode != 0:
        return f"`ip netns add` fails here: {made.stderr.strip()}"
    _ip("netns", "del", probe, check=False)
    return None


def namespaces() -> list[str]:
    listed = _ip("netns", "list", check=False).stdout.splitlines()
    return [line.split()[0] for line in listed if line.strip()]


def _kill_all_in(ns: str) -> None:
    """SIGKILL what is left in ``ns`` (only processes a run of these tests started there)."""
    for _ in range(20):
        pids = [int(p) for p in _ip("netns", "pids", ns, check=False).stdout.split()]
        if not pids:
            return
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.05)


def clean_stale() -> list[str]:
    """Delete the namespaces of earlier runs whose process is gone; their names."""
    gone = []
    for ns in namespaces():
        m = _STALE.match(ns)
        if m and int(m.group(1)) != os.getpid() and not pid_alive(int(m.group(1))):
            _kill_all_in(ns)
            _ip("netns", "del", ns, check=False)
            gone.append(ns)
    return gone


def _libc() -> Any:
    return ctypes.CDLL(None, use_errno=True)


def call_in(ns: str, fn: Callable[..., _T], *args: Any) -> _T:
    """``fn(*args)`` on a fresh thread that entered ``ns``: sockets it opens live there.

    A network namespace is per thread, so the test process itself stays where it
    was; what ``fn`` returns (or raises) comes back here.
    """
    box: dict[str, Any] = {}

    def run() -> None:
        try:
            fd = os.open(f"/run/netns/{ns}", os.O_RDONLY)
            try:
                if _libc().setns(fd, _CLONE_NEWNET) != 0:
                    err = ctypes.get_errno()
                    raise OSError(err, f"setns {ns}: {os.strerror(err)}")
            finally:
                os.close(fd)
            box["value"] = fn(*args)
        except BaseException as err:  # handed to the caller
            box["error"] = err

    thread = threading.Thread(target=run, name=f"in-{ns}")
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]
    return box["value"]


@dataclass
class Host:
    name: str
    ns: str
    address: str
    #: the hub end of this host's veth pair (a bridge port)
    hub_port: str


@dataclass
class Network:
    """A hub with a bridge and hosts on it; ``close`` removes all of it."""

    tag: str = field(default_factory=lambda: f"{PREFIX}{os.getpid()}")
    hosts: dict[str, Host] = field(default_factory=dict)
    procs: list[subprocess.Popen] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.hub = Host("hub", f"{self.tag}-hub", HUB_ADDRESS, "br0")
        self._next = 10

    def up(self) -> Network:
        clean_stale()
        for ns in namespaces():
            if ns.startswith(f"{self.tag}-"):
                # Ours from a fixture of this same process that failed to close.
                _kill_all_in(ns)
                _ip("netns", "del", ns, check=False)
        hub = self.hub.ns
        _ip("netns", "add", hub)
        _ip("-n", hub, "link", "set", "lo", "up")
        _ip("-n", hub, "link", "add", "br0", "type", "bridge")
        _ip("-n", hub, "addr", "add", f"{HUB_ADDRESS}/24", "dev", "br0")
        _ip("-n", hub, "link", "set", "br0", "up")
        return self

    def add_host(self, name: str) -> Host:
        ns = f"{self.tag}-{name}"
        address = f"{SUBNET}.{self._next}"
        self._next += 1
        port = f"to-{name}"[:15]
        _ip("netns", "add", ns)
        _ip("-n", ns, "link", "set", "lo", "up")
        # Both ends made straight in their namespaces: nothing passes through the root one.
        _ip("link", "add", "eth0", "netns", ns, "type", "veth", "peer", "name", port,
            "netns", self.hub.ns)  # fmt: skip
        _ip("-n", self.hub.ns, "link", "set", port, "master", "br0", "up")
        _ip("-n", ns, "addr", "add", f"{address}/24", "dev", "eth0")
        _ip("-n", ns, "link", "set", "eth0", "up")
        host = Host(name, ns, address, port)
        self.hosts[name] = host
        return host

    def cut(self, name: str) -> None:
        """Cut ``name``'s link (its bridge port down): it is alone until ``mend``."""
        _ip("-n", self.hub.ns, "link", "set", self.hosts[name].hub_port, "down")

    def mend(self, name: str) -> None:
        _ip("-n", self.hub.ns, "link", "set", self.hosts[name].hub_port, "up")

    def popen(self, host: Host, args: list[str], **kwargs: Any) -> subprocess.Popen:
        """``args`` run inside ``host``'s namespace, killed at ``close`` if still running."""
        proc = subprocess.Popen(["ip", "netns", "exec", host.ns, *args], **kwargs)
        self.procs.append(proc)
        return proc

    def run(self, host: Host, args: list[str], **kwargs: Any) -> subprocess.CompletedProcess:
        kwargs.setdefault("capture_output", True)
        kwargs.setdefault("text", True)
        return subprocess.run(["ip", "netns", "exec", host.ns, *args], **kwargs)

    def close(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.terminate()
        deadline = time.monotonic() + 5
        for proc in self.procs:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(max(0.1, deadline - time.monotonic()))
        for ns in [h.ns for h in self.hosts.values()] + [self.hub.ns]:
            _kill_all_in(ns)
            _ip("netns", "del", ns, check=False)
        for proc in self.procs:
            with contextlib.suppress(Exception):
                proc.kill()
                proc.wait(5)


@contextlib.contextmanager
def network(*names: str) -> Iterator[Network]:
    """A hub and the hosts ``names``, removed however the block ends."""
    net = Network()
    try:
        net.up()
        for name in names:
            net.add_host(name)
        yield net
    finally:
        net.close()
