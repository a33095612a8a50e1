"""A real, hermetic libvirtd in its own network and mount namespace, for integration tests.

How it is built (``/work/shared/real-components.md`` section 0 has the measurements):

* ``ip netns add kvl-...`` gives the daemon its own links, routes and netfilter tables, so the
  NAT rules libvirt writes for its ``default`` network never reach the machine's firewall.
* ``ip netns exec NS unshare --mount --propagation private sh -c SCRIPT`` gives it a private
  mount table. SCRIPT puts a tmpfs on ``/run`` (the machine may have no ``/run/libvirt`` and we
  must not create one) and bind-mounts temporary folders over ``/etc/libvirt`` (seeded with a
  copy of the machine's), ``/run/libvirt``, ``/var/lib/libvirt``, ``/var/log/libvirt`` and
  ``/var/cache/libvirt``, starts ``virtlogd -d`` and execs ``libvirtd``: the PID we hold *is*
  libvirtd, because ``ip netns exec``, ``unshare`` (without ``--fork``) and ``exec`` all replace
  themselves.
* The daemon's socket appears outside as ``<state>/run/libvirt-sock``; tests connect with
  ``qemu+unix:///system?socket=...``. The harness drives libvirt with ``virsh`` so that it
  proves kvmnet without depending on it.

Teardown destroys the guests, stops the daemon by PID, then the processes still left in the
namespace (libvirt's dnsmasq, virtlogd), deletes the namespace and the folders. An ``atexit`` hook
and a SIGTERM handler run the same teardown if pytest dies half way.

Usage::

    with LabFactory() as labs:
        lab = labs.start()
        lab.define_guest("g1", network="default")
        print(lab.bridge_ports())        # {'vnet0': 'virbr0'}
"""

from __future__ import annotations

import atexit
import contextlib
import json
import logging
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType, TracebackType

from lxml import etree

from .lab_host import PREFIX, LabError, delete_netns, reap_stale, run, wait_for

log = logging.getLogger(__name__)

LIBVIRTD = "/usr/sbin/libvirtd"
VIRTLOGD = "/usr/sbin/virtlogd"
QEMU = "/usr/bin/qemu-system-x86_64"
# Folders libvirt keeps state in; each gets a private temporary folder bound over it.
BOUND = {
    "etc": "/etc/libvirt",
    "run": "/run/libvirt",
    "lib": "/var/lib/libvirt",
    "log": "/var/log/libvirt",
    "cache": "/var/cache/libvirt",
}
DEFAULT_NET_XML = """<network>
  <name>default</name>
  <bridge name='virbr0'/>
  <forward/>
  <ip address='192.168.122.1' netmask='255.255.255.0'>
    <dhcp><range start='192.168.122.2' end='192.168.122.254'/></dhcp>
  </ip>
</network>
"""


@dataclass(frozen=True)
class Nic:
    """A domain interface as libvirt's XML states it, read without kvmnet."""

    mac: str
    type: str
    source: str | None
    target: str | None
    # Identity of the live device; compared only where a test asks for it.
    alias: str | None = field(default=None, compare=False)
    pci_slot: str | None = field(default=None, compare=False)


def nics(domain_xml: str) -> list[Nic]:
    """The ``<interface>`` elements of a domain XML, in order."""
    found = []
    for iface in etree.fromstring(domain_xml.encode()).iterfind("devices/interface"):
        kind = iface.get("type", "")
        source = iface.find("source")
        target = iface.find("target")
        mac = iface.find("mac")
        alias = iface.find("alias")
        address = iface.find("address")
        attr = {"network": "network", "direct": "dev"}.get(kind, "bridge")
        found.append(Nic(
            mac=(mac.get("address", "") if mac is not None else "").lower(),
            type=kind,
            source=None if source is None else source.get(attr),
            target=None if target is None else target.get("dev"),
            alias=None if alias is None else alias.get("name"),
            pci_slot=None if address is None else address.get("slot"),
        ))
    return found


@dataclass
class LibvirtLab:
    """One running hermetic libvirtd; create it through :class:`LabFactory`."""

    netns: str
    state_dir: Path
    process: subprocess.Popen[bytes]
    started_in: float = 0.0
    guests: list[str] = field(default_factory=list)

    @property
    def socket(self) -> Path:
        return self.state_dir / "run" / "libvirt-sock"

    @property
    def uri(self) -> str:
        return f"qemu+unix:///system?socket={self.socket}"

    # -- commands -------------------------------------------------------------------------
    def run(
        self, argv: Sequence[str], *, check: bool = True, timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        """Run a command inside the lab's network namespace."""
        return run(["ip", "netns", "exec", self.netns, *argv], check=check, timeout=timeout)

    def virsh(self, *args: str, check: bool = True) -> str:
        return run(["virsh", "-q", "-c", self.uri, *args], check=check).stdout

    # -- observation ----------------------------------------------------------------------
    def bridge_ports(self, bridge: str | None = None) -> dict[str, str]:
        """{port: master} from ``bridge -j link`` in the namespace (only ``bridge``'s if given)."""
        entries = json.loads(self.run(["bridge", "-j", "link", "show"]).stdout or "[]")
        ports = {str(e["ifname"]): str(e.get("master", "")) for e in entries}
        return {p: m for p, m in ports.items() if bridge is None or m == bridge}

    def links(self) -> set[str]:
        """Names of the links in the lab's namespace."""
        return {str(e["ifname"]) for e in json.loads(self.run(["ip", "-j", "link"]).stdout)}

    def domain_xml(self, domain: str, *, inactive: bool = False) -> str:
        return self.virsh("dumpxml", *(["--inactive"] if inactive else []), domain)

    def nics(self, domain: str, *, inactive: bool = False) -> list[Nic]:
        """The live (default) or persistent interfaces of ``domain``, straight from virsh."""
        return nics(self.domain_xml(domain, inactive=inactive))

    def tap_of(self, domain: str, mac: str) -> str:
        """The host-side tap of the running guest's NIC with ``mac`` (``domiflist``)."""
        for line in self.virsh("domiflist", domain).splitlines():
            cols = line.split()
            if len(cols) == 5 and cols[4].lower() == mac.lower():
                return cols[0]
        raise LabError(f"domain {domain!r} has no live NIC with MAC {mac}")

    def serial_path(self, domain: str) -> Path:
        return self.state_dir / "serial" / f"{domain}.log"

    def serial_log(self, domain: str) -> str:
        path = self.serial_path(domain)
        return path.read_text(errors="replace") if path.exists() else ""

    # -- guests ---------------------------------------------------------------------------
    def define_guest(
        self,
        name: str,
        *,
        network: str | None = None,
        bridge: str | None = None,
        direct: str | None = None,
        mac: str | None = None,
        kernel_boot: bool = False,
        memory_mib: int | None = None,
        start: bool = True,
    ) -> str:
        """Define (and start) a diskless TCG guest with at most one NIC; returns its name.

        ``kernel_boot=True`` boots the tiny guest (scripts/build-tiny-guest.py) directly.
        """
        os_xml = "<type arch='x86_64' machine='pc'>hvm</type>"
        if kernel_boot:
            from .tiny_guest import ensure_tiny_guest  # built only when a test needs it

            guest = ensure_tiny_guest()
            os_xml += (
                f"<kernel>{guest.kernel}</kernel><initrd>{guest.initrd}</initrd>"
                "<cmdline>console=ttyS0 quiet panic=-1</cmdline>"
            )
        memory = memory_mib or (256 if kernel_boot else 64)
        serial = self.serial_path(name)
        serial.parent.mkdir(exist_ok=True)
        xml = (
            f"<domain type='qemu'><name>{name}</name>"
            f"<memory unit='MiB'>{memory}</memory><vcpu>1</vcpu>"
            f"<os>{os_xml}</os><features><acpi/><apic/></features>"
            "<on_poweroff>destroy</on_poweroff>"
            f"<devices><emulator>{QEMU}</emulator>"
            f"{interface_xml(network=network, bridge=bridge, direct=direct, mac=mac)}"
            f"<serial type='file'><source path='{serial}'/></serial>"
            "<memballoon model='none'/></devices></domain>"
        )
        xml_file = self.state_dir / f"{name}.xml"
        xml_file.write_text(xml)
        self.virsh("define", str(xml_file))
        self.guests.append(name)
        if start:
            self.virsh("start", name)
        return name

    def stderr_tail(self, lines: int = 40) -> str:
        """The last ``lines`` lines libvirtd (and its start script) wrote: why it died."""
        try:
            text = (self.state_dir / "libvirtd.stderr").read_text(errors="replace")
        except OSError as exc:
            return f"(no libvirtd.stderr: {exc})"
        return "\n".join(text.splitlines()[-lines:])

    def restart_daemon(self) -> None:
        """Start libvirtd again on the same state after it died (e.g. a test's SIGKILL).

        Running guests keep running meanwhile, and the new daemon takes them over, as a
        host's libvirtd does after a crash.
        """
        if self.process.poll() is None:
            raise LabError(f"libvirtd in {self.netns} (pid {self.process.pid}) is still running")
        self.socket.unlink(missing_ok=True)
        self.process = _spawn_daemon(self.netns, self.state_dir, virtlogd=False)
        LabFactory._wait_ready(self)

    def destroy_guests(self) -> None:
        for name in self.guests:
            self.virsh("destroy", name, check=False)
            self.virsh("undefine", name, check=False)
        self.guests.clear()

    # -- lifecycle ------------------------------------------------------------------------
    def stop(self) -> None:
        """Tear everything down; safe to call twice and after a half-finished start."""
        try:
            if self.process.poll() is None and self.socket.exists():
                self.destroy_guests()
            _save_warm_cache(self.state_dir)
        finally:
            if self.process.poll() is None:
                self.process.terminate()
                try:
                    self.process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    self.process.kill()
                    self.process.wait(timeout=10)
            delete_netns(self.netns)
            shutil.rmtree(self.state_dir, ignore_errors=True)


def interface_xml(
    *,
    network: str | None = None,
    bridge: str | None = None,
    direct: str | None = None,
    mac: str | None = None,
) -> str:
    """A virtio NIC on a libvirt network, a bridge or macvtap on a link; '' for none."""
    if network:
        kind, source = "network", f"network='{network}'"
    elif bridge:
        kind, source = "bridge", f"bridge='{bridge}'"
    elif direct:
        kind, source = "direct", f"dev='{direct}' mode='bridge'"
    else:
        return ""
    mac_xml = f"<mac address='{mac}'/>" if mac else ""
    # No option ROM: a diskless guest would otherwise PXE-boot and burn TCG CPU forever.
    return (
        f"<interface type='{kind}'>{mac_xml}<source {source}/>"
        "<model type='virtio'/><rom enabled='no'/></interface>"
    )


def _mount_script(state: Path, *, virtlogd: bool = True) -> str:
    binds = "\n".join(f"mount -n --bind {state / key} {target}" for key, target in BOUND.items())
    # A restarted libvirtd finds the first virtlogd still running (its socket is in the
    # bound /run/libvirt), as on a real host where only libvirtd restarts.
    logd = f"{VIRTLOGD} -d -p {state}/virtlogd.pid" if virtlogd else ""
    return f"""set -e
mount -n -t tmpfs kvl-run /run
mkdir -p /run/libvirt
{binds}
{logd}
exec {LIBVIRTD}
"""


def _spawn_daemon(netns: str, state: Path, *, virtlogd: bool = True) -> subprocess.Popen[bytes]:
    log_file = (state / "libvirtd.stderr").open("ab")
    return subprocess.Popen(
        ["ip", "netns", "exec", netns, "unshare", "--mount", "--propagation", "private",
         "sh", "-c", _mount_script(state, virtlogd=virtlogd)],
        stdin=subprocess.DEVNULL, stdout=log_file, stderr=subprocess.STDOUT,
    )  # fmt: skip


def _seed_state(state: Path) -> None:
    for key in BOUND:
        (state / key).mkdir(mode=0o755)
    shutil.copytree("/etc/libvirt", state / "etc", dirs_exist_ok=True, symlinks=True)
    # The lab defines the networks it needs itself; nothing autostarts behind its back.
    shutil.rmtree(state / "etc" / "qemu" / "networks" / "autostart", ignore_errors=True)
    qemu_conf = state / "etc" / "qemu.conf"
    # QEMU as root: the tiny guest's kernel lives under root's 0700 home, and the serial log
    # under the lab's folder. Only this throwaway copy of qemu.conf changes.
    # libvirt reads the first of duplicate keys, so drop any user/group the machine sets.
    kept = [
        line for line in qemu_conf.read_text().splitlines()
        if not re.match(r"\s*(user|group)\s*=", line)
    ]
    qemu_conf.write_text("\n".join([*kept, 'user = "root"', 'group = "root"', ""]))
    # A warm capabilities cache saves libvirtd its ~8 s QEMU probe on every start after the first.
    warm = _warm_cache()
    if warm.is_dir():
        shutil.copytree(warm, state / "cache" / "qemu" / "capabilities", dirs_exist_ok=True)


def _warm_cache() -> Path:
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "kvmnet" / "libvirt-qemu-capabilities"


def _save_warm_cache(state: Path) -> None:
    """Keep this lab's capabilities for the next labs, when they differ from the kept ones."""
    caps = state / "cache" / "qemu" / "capabilities"
    warm = _warm_cache()
    if not caps.is_dir() or not any(caps.iterdir()) or _same_files(caps, warm):
        return
    tmp = Path(tempfile.mkdtemp(dir=_ensure_parent(warm)))
    shutil.copytree(caps, tmp, dirs_exist_ok=True)
    old = warm.with_name(f"{warm.name}.old-{os.getpid()}")
    with contextlib.suppress(OSError):
        warm.rename(old)
    try:
        tmp.rename(warm)
    except OSError:  # another lab saved its copy first
        shutil.rmtree(tmp, ignore_errors=True)
    shutil.rmtree(old, ignore_errors=True)


def _same_files(a: Path, b: Path) -> bool:
    if not b.is_dir():
        return False
    names = sorted(p.name for p in a.iterdir())
    if names != sorted(p.name for p in b.iterdir()):
        return False
    return all((a / n).read_bytes() == (b / n).read_bytes() for n in names)


def _ensure_parent(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    return path.parent


class LabFactory:
    """Starts hermetic libvirtds and guarantees their teardown (``with`` block, atexit, SIGTERM)."""

    def __init__(self) -> None:
        self._labs: list[LibvirtLab] = []
        self._extra_netns: list[str] = []
        self._count = 0
        self._previous_sigterm: object = None

    def __enter__(self) -> LabFactory:
        for netns in reap_stale():
            log.warning("removed %s, left behind by an earlier run that was killed", netns)
        atexit.register(self.close)
        self._previous_sigterm = signal.signal(signal.SIGTERM, self._on_sigterm)
        return self

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
        atexit.unregister(self.close)
        if callable(self._previous_sigterm) or isinstance(self._previous_sigterm, int):
            signal.signal(signal.SIGTERM, self._previous_sigterm)

    def _on_sigterm(self, signum: int, frame: FrameType | None) -> None:
        # Clean up, then die of the same signal: an exception here would only fail the test
        # that happened to run, and pytest would carry on without its labs.
        self.close()
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)

    def name(self, role: str) -> str:
        """A namespace name unique to this process: ``kvl-<pid>-<role>``."""
        return f"{PREFIX}-{os.getpid()}-{role}"

    def add_netns(self, role: str) -> str:
        """A bare namespace (lo up) that this factory deletes at teardown."""
        netns = self.name(role)
        delete_netns(netns)
        run(["ip", "netns", "add", netns])
        self._extra_netns.append(netns)
        run(["ip", "-n", netns, "link", "set", "lo", "up"])
        return netns

    def start(self, *, default_network: bool = True, bridge: str | None = "br0") -> LibvirtLab:
        """A fresh libvirtd in ``kvl-<pid>-lvN``, ready, with ``default`` and ``bridge`` up."""
        self._count += 1
        netns = self.name(f"lv{self._count}")
        began = time.monotonic()
        delete_netns(netns)
        run(["ip", "netns", "add", netns])
        state = Path(tempfile.mkdtemp(prefix=f"{PREFIX}-libvirt-{os.getpid()}-"))
        state.chmod(0o755)
        proc: subprocess.Popen[bytes] | None = None
        try:
            _seed_state(state)
            run(["ip", "-n", netns, "link", "set", "lo", "up"])
            proc = _spawn_daemon(netns, state)
            lab = LibvirtLab(netns=netns, state_dir=state, process=proc)
            self._labs.append(lab)
            self._wait_ready(lab)
            if default_network:
                self._start_default_network(lab)
            if bridge:
                lab.run(["ip", "link", "add", bridge, "type", "bridge", "stp_state", "0",
                         "forward_delay", "0"])
                lab.run(["ip", "link", "set", bridge, "up"])
            lab.started_in = time.monotonic() - began
            log.info("libvirtd in %s ready in %.1f s", netns, lab.started_in)
            return lab
        except BaseException:
            if proc is None:
                delete_netns(netns)
                shutil.rmtree(state, ignore_errors=True)
            raise

    @staticmethod
    def _wait_ready(lab: LibvirtLab) -> None:
        def ready() -> bool:
            if lab.process.poll() is not None:
                stderr = (lab.state_dir / "libvirtd.stderr").read_text(errors="replace")
                raise LabError(f"libvirtd in {lab.netns} exited {lab.process.returncode}: "
                               f"{stderr.strip()[-2000:]}")
            if not lab.socket.exists():
                return False
            return lab.virsh("uri", check=False).strip() != ""

        wait_for(ready, timeout=90, what=f"libvirtd in {lab.netns}", interval=0.2)

    @staticmethod
    def _start_default_network(lab: LibvirtLab) -> None:
        if "default" not in lab.virsh("net-list", "--all", "--name").split():
            xml = lab.state_dir / "default-net.xml"
            xml.write_text(DEFAULT_NET_XML)
            lab.virsh("net-define", str(xml))
        lab.virsh("net-start", "default")

    def close(self) -> None:
        """Tear down every lab and namespace this factory made, last first; errors logged."""
        while self._labs:
            lab = self._labs.pop()
            try:
                lab.stop()
            except Exception:
                log.exception("tearing down %s", lab.netns)
        while self._extra_netns:
            delete_netns(self._extra_netns.pop())
