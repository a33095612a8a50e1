"""The ifupdown backend's planning (no root): /etc/network/interfaces edited in place,
validated by ifupdown's own reader (``ifquery``), released byte for byte.

The corpus is the example configurations Debian ships with ifupdown
(/usr/share/doc/ifupdown/examples/network-interfaces, commented out there) plus the layouts
real hosts have (installer default, Proxmox-style, includes); each NIC stanza is bridged,
checked with ifquery, and released back to the original bytes.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from kvmnet.backends import IfupdownBackend, create_backend
from kvmnet.errors import InvalidInput
from kvmnet.hostnet.backends.ifupdown import released_text
from kvmnet.hostnet.backends.interfaces import (
    HOOKS,
    Config,
    Stanza,
    is_link_level,
    read_config,
    split_lines,
)
from kvmnet.hostnet.model.plan import Plan, RemoveFile, RunCommand, WriteFile
from kvmnet.hostnet.model.state import IpAddress, IpRoute, LinkState
from kvmnet.hostnet.nic import Bridge, HostNic
from kvmnet.hostnet.runners.runner import RecordingRunner
from kvmnet.testing import fake_host
from tests.lab.golden import require_tool

EXAMPLES = Path("/usr/share/doc/ifupdown/examples/network-interfaces")
MAC = "52:54:00:aa:00:01"

INSTALLER = """\
# This file describes the network interfaces available on your system
# and how to activate them. For more information, see interfaces(5).

source /etc/network/interfaces.d/*

# The loopback network interface
auto lo
iface lo inet loopback

# The primary network interface
allow-hotplug eth0
iface eth0 inet dhcp
# This is an autoconfigured IPv6 interface
iface eth0 inet6 auto
"""

PROXMOX_LIKE = """\
auto lo
iface lo inet loopback

auto eth0
iface eth0 inet static
        address 192.168.10.2/24
        gateway 192.168.10.1
        dns-nameservers 192.168.10.1
        dns-search example.org
        mtu 9000
        hwaddress ether 52:54:00:aa:00:01
        post-up ip route add 10.10.0.0/16 via 192.168.10.254 dev $IFACE table 100
        pre-down ip route del 10.10.0.0/16 via 192.168.10.254 dev $IFACE table 100

iface eth1 inet manual"""  # no newline at the end: must come back without one

MULTI = """\
auto eth0
iface eth0 inet static
    address 192.168.0.42/24
    gateway 192.168.0.1
iface eth0 inet static
    address 172.16.0.1/24
iface eth0 inet6 static
    address fec0::42/64
    gateway fec0::1
"""

CONTINUED = """\
auto eth0
iface eth0 inet static
    address 10.1.2.3/24
    up ip route add 10.9.0.0/16 \\
       via 10.1.2.254
"""


def _assert_carried(nic_stanzas: list[Stanza], after: Config, nic: str = "eth0",
                    bridge: str = "br0") -> None:
    """Every option of every stanza of ``nic`` is, in order, on ``bridge``'s stanza of the
    same index or on a ``manual`` port stanza of the same family (one for the first stanza,
    one more for each later stanza that leaves something on the port): link-level options
    on the port, inet6's mtu on both, hooks on one side (on the bridge with the NIC's name
    replaced), everything else on the bridge."""
    names = re.compile(rf"(?<![\w-]){re.escape(nic)}(?![\w-]|\.\d)")
    carried = after.stanzas_of(bridge)
    assert [(s.family, s.method) for s in carried] == [(s.family, s.method) for s in nic_stanzas]
    want_ports: list[tuple[str, str, list[tuple[str, str]]]] = []
    for n, (old, new) in enumerate(zip(nic_stanzas, carried, strict=True)):
        on_bridge = [o for o in new.options if not o[0].startswith("bridge_")]
        to_bridge: list[tuple[str, str]] = []
        to_port: list[tuple[str, str]] = []
        for key, value in old.options:
            moved = (key, names.sub(bridge, value))
            if key == "mtu" and old.family == "inet6":
                to_port.append((key, value))
                to_bridge.append((key, value))
            elif key in HOOKS and moved in on_bridge:
                to_bridge.append(moved)
            elif key in HOOKS:
                to_port.append((key, value))
            else:
                (to_port if is_link_level(key) else to_bridge).append((key, value))
        assert on_bridge == to_bridge
        if n == 0 or to_port:
            want_ports.append((old.family, "manual", to_port))
    got = [(s.family, s.method, list(s.options)) for s in after.stanzas_of(nic)]
    assert got == want_ports


def _debian_examples() -> list[tuple[str, str]]:
    """(name, text) of each commented example in ifupdown's shipped examples file that
    configures an ethernet NIC by name (mapping examples are refused, checked apart; so is
    the one whose hook names eth0 in a script kvmnet does not know: see
    test_ifupdown_fidelity.py)."""
    if not EXAMPLES.exists():
        return []
    out: list[tuple[str, str]] = []
    block: list[str] = []
    for line in [*EXAMPLES.read_text().splitlines(), ""]:
        if line.startswith("# ") and re.match(r"# *(auto|iface|mapping|allow-|\s)", line):
            block.append(line[2:])
        elif block:
            text = "\n".join(block) + "\n"
            if (re.search(r"^iface eth\d ", text, re.M) and "mapping" not in text
                    and "check-mac-address.sh eth0" not in text):
                out.append((f"debian-example-{len(out)}", text))
            block = []
    return out


CORPUS = [("installer", INSTALLER), ("proxmox-like", PROXMOX_LIKE), ("multi", MULTI),
          ("continued", CONTINUED), *_debian_examples()]


def _host(root: Path, *, nic: str = "eth0", bridged: bool = False) -> RecordingRunner:
    """A fake host whose NIC carries 192.168.0.42/24, or (``bridged``) is br0's port."""
    found = {str(p): p.read_bytes() for p in root.rglob("*") if p.is_file()}
    addr = (IpAddress("192.168.0.42/24"),)
    if bridged:
        links = [
            LinkState(nic, MAC, master="br0", operstate="UP", flags=("UP",)),
            LinkState("br0", MAC, kind="bridge", operstate="UP", flags=("UP",),
                      addresses=addr, ports=(nic,)),
        ]
    else:
        links = [LinkState(nic, MAC, operstate="UP", flags=("UP",), addresses=addr)]
    route = IpRoute("default", "br0" if bridged else nic, "192.168.0.1")
    return fake_host(links, [route], files=found)


def _root(tmp_path: Path, text: str, extra: dict[str, str] | None = None) -> Path:
    root = tmp_path / "root"
    (root / "etc/network/interfaces.d").mkdir(parents=True)
    (root / "etc/network/interfaces").write_text(text)
    for name, body in (extra or {}).items():
        (root / "etc/network" / name).write_text(body)
    return root


def _plan(root: Path, nic: str = "eth0", *, release: bool = False, **kw: object) -> Plan:
    runner = _host(root, nic=nic, bridged=release)
    backend = IfupdownBackend(root=str(root), runner=runner, **kw)  # type: ignore[arg-type]
    br, port = Bridge("br0", backend=backend), HostNic(nic, backend=backend)
    return br.release(port, dry_run=True) if release else br.enslave(port, dry_run=True)


def _written(plan: Plan) -> dict[str, str]:
    return {s.path: s.content for s in plan.steps if isinstance(s, WriteFile)}


def _ifquery(path: Path, name: str, tmp_path: Path) -> dict[str, str]:
    ifquery = require_tool("ifquery")
    state = tmp_path / "ifstate"
    state.mkdir(exist_ok=True)
    proc = subprocess.run([ifquery, "-i", str(path), "--state-dir", str(state), name],
                          capture_output=True, text=True, timeout=30, check=False)
    assert proc.returncode == 0, proc.stderr
    return dict(line.split(": ", 1) for line in proc.stdout.splitlines() if ": " in line)


@pytest.mark.parametrize(("name", "text"), CORPUS, ids=[c[0] for c in CORPUS])
def test_corpus_bridges_validates_and_releases_byte_for_byte(
    name: str, text: str, tmp_path: Path
) -> None:
    root = _root(tmp_path, text)
    main = root / "etc/network/interfaces"
    before = read_config(str(main), lambda p: Path(p).read_text(), lambda p: None)
    nic_stanzas = before.stanzas_of("eth0")
    plan = _plan(root)
    written = _written(plan)
    assert list(written) == [str(main)]
    bridged = written[str(main)]
    # ifupdown's own reader sees a manual port and a bridge with every IP-level option.
    out = tmp_path / "bridged"
    out.write_text(bridged)
    port = _ifquery(out, "eth0", tmp_path)
    br0 = _ifquery(out, "br0", tmp_path)
    assert br0["bridge_ports"] == "eth0" and br0["bridge_hw"] == MAC
    assert br0["bridge_stp"] == "off" and br0["bridge_fd"] == "0"
    # Every stanza carried: every option of every NIC stanza on the port or the bridge.
    after = read_config(str(out), lambda p: Path(p).read_text(), lambda p: None)
    _assert_carried(nic_stanzas, after)
    if len(nic_stanzas) == 1:  # ifquery shows one stanza per name: compare what it read
        for key, value in nic_stanzas[0].options:
            if key in HOOKS:
                continue  # repeatable: ifquery shows only one of them
            holder = port if is_link_level(key) else br0
            # ifquery prints addresses without the prefix and hwaddress without "ether".
            want = {"address": value.split("/")[0],
                    "hwaddress": value.removeprefix("ether ")}.get(key, value)
            assert holder.get(key) == want, key
    assert not any(k in port for k in ("address", "gateway"))
    # Release: the file as it was, byte for byte.
    released = released_text(split_lines(bridged), "br0")
    assert released == text
    main.write_text(bridged)
    back = _written(_plan(root, release=True))
    assert back == {str(main): text}


def test_corpus_has_the_debian_examples() -> None:
    if not EXAMPLES.exists():
        require_tool("ifquery")  # fails under CI: the package ships the examples
    assert len([c for c in CORPUS if c[0].startswith("debian-")]) >= 4


def test_includes_are_followed_and_the_including_file_left_alone(tmp_path: Path) -> None:
    root = _root(tmp_path, "source-directory interfaces.d\nauto lo\niface lo inet loopback\n")
    (root / "etc/network/interfaces.d/lan").write_text(INSTALLER.split("source")[0]
                                                       + "auto eth0\niface eth0 inet dhcp\n")
    (root / "etc/network/interfaces.d/ignored.cfg").write_text("iface eth0 inet static\n")
    written = _written(_plan(root))
    assert list(written) == [str(root / "etc/network/interfaces.d/lan")]


def test_activation_order_and_rollback_hints(tmp_path: Path) -> None:
    root = _root(tmp_path, INSTALLER)
    plan = _plan(root, files_only=False, state_dir="/run/lab")
    kinds = [type(s).__name__ for s in plan.steps]
    assert kinds == ["RunCommand", "WriteFile", "RunCommand"]
    first, last = plan.steps[0], plan.steps[-1]
    assert isinstance(first, RunCommand) and isinstance(last, RunCommand)
    main = str(root / "etc/network/interfaces")
    assert first.argv == ("ifdown", "-i", main, "--state-dir", "/run/lab", "eth0")
    assert last.argv == ("ifup", "-i", main, "--state-dir", "/run/lab", "br0")
    assert plan.rollback_hints[0] == RemoveFile("/run/lab/ifstate.br0")


def test_another_root_runs_nothing_on_this_machine(tmp_path: Path) -> None:
    # Files written for an image or another root: no command here, and no check either (what
    # this machine shows cannot pass for files it does not run, so apply() rolled back).
    root = _root(tmp_path, INSTALLER)
    runner = _host(root)
    backend = IfupdownBackend(root=str(root), runner=runner)
    assert backend.files_only
    plan = Bridge("br0", backend=backend).enslave(HostNic("eth0", backend=backend), dry_run=True)
    assert plan.commands == () and plan.checks == () and plan.rollback_hints == ()
    assert [type(s).__name__ for s in plan.steps] == ["WriteFile"]
    assert any(f"only files are written under {root}: nothing runs or is verified" in w
               for w in plan.warnings)
    assert not plan.restore_runtime
    assert all(c.kind != "run" or "-j" in c.argv or c.argv[0] in ("readlink", "cat", "nmcli",
               "networkctl", "iptables", "ls") for c in runner.calls)
    main = root / "etc/network/interfaces"
    main.write_text(_written(plan)[str(main)])
    back = _plan(root, release=True)
    assert back.commands == () and back.checks == ()
    assert [type(s).__name__ for s in back.steps] == ["WriteFile"]


def test_files_only_is_decided_like_networkd(tmp_path: Path) -> None:
    # One way for every file backend: files only by default for another root without a
    # namespace; a lab namespace (or files_only=False) runs ifdown/ifup; True never does.
    root = _root(tmp_path, INSTALLER)
    runner = _host(root)
    assert not IfupdownBackend(runner=runner).files_only
    assert not IfupdownBackend(root=str(root), netns="kvmnet-lab", runner=runner).files_only
    assert not IfupdownBackend(root=str(root), runner=runner, files_only=False).files_only
    assert IfupdownBackend(runner=runner, files_only=True).files_only
    plan = _plan(root, files_only=False)
    assert [c[0] for c in plan.commands] == ["ifdown", "ifup"] and plan.checks


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("auto eth1\niface eth1 inet dhcp\n", "no `iface eth0"),
        ("mapping eth*\n    script /x\niface eth0 inet dhcp\n", "mapping"),
        ("iface eth0 inet dhcp\niface br0 inet manual\n", "br0 already has a stanza"),
    ],
    ids=["no-stanza", "mapping", "bridge-exists"],
)
def test_refusals_name_the_reason(tmp_path: Path, text: str, match: str) -> None:
    root = _root(tmp_path, text)
    with pytest.raises(InvalidInput, match=match):
        _plan(root)


def test_release_without_kvmnet_bridge_is_refused(tmp_path: Path) -> None:
    root = _root(tmp_path, INSTALLER)
    with pytest.raises(InvalidInput, match="no bridge br0 written by kvmnet"):
        _plan(root, release=True)


def test_create_backend_knows_ifupdown(tmp_path: Path) -> None:
    root = _root(tmp_path, INSTALLER)
    backend = create_backend("ifupdown", root=str(root))
    assert isinstance(backend, IfupdownBackend) and backend.root == str(root)
    assert backend.files_only
