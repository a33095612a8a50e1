"""Refusals before anything changes. Each raises `PreflightRefused` naming
the fix and the ``force=`` key that overrides it:

=================  ===========================================================  =========
check (force key)  refused when                                                 override
=================  ===========================================================  =========
``bridge-name``    the bridge name is not a kernel link name                    no
``not-a-bridge``   a link of the bridge's name exists and is not a bridge        no
``wireless``       the NIC is a Wi-Fi station (802.11 cannot bridge it)         yes
``enslaved``       the NIC is already a port of another bridge or a bond's slave  yes
                   (bridge the bond itself)
``vlan-parent``    VLANs ride on the NIC (eth0.100): bridge the VLAN you mean     yes
``libvirt``        the bridge belongs to a libvirt network (virbr0)             yes
``br-netfilter``   br_netfilter is loaded and iptables' FORWARD policy is DROP  yes
``managed``        NetworkManager/networkd manages the NIC and the backend is a  yes
                   runtime one that bypasses it (iproute2): it would fight back
``ssh``            the SSH session runs over the NIC and no dead-man timer      yes
``netboot``        the NIC's configuration says the host boots through it       yes
                   (ifcfg ``NETBOOT=yes``, ``BOOTPROTO=ibft``: iSCSI root)
``802.1x``         the NIC authenticates to its switch port with 802.1X: the    yes
                   switch admits one MAC and drops the guests' frames
``loopback``       the NIC is a loopback device (the kernel refuses it as a     no
                   bridge port)
``infiniband``     the NIC is InfiniBand (20-byte address; the kernel bridges   no
                   Ethernet only)
``sriov-vf``       the NIC is an SR-IOV VF (/sys: ``device/physfn``): the PF's  yes
                   switch forwards only the VF's own MAC
``bridge-in-use``  (release) other links are ports of the bridge: guests' taps  yes
                   or another NIC would lose the LAN (files for another root
                   are not refused)
=================  ===========================================================  =========

``netboot`` and ``802.1x`` are found in a backend's files, and so can ``sriov-vf``,
``vlan-parent`` and ``enslaved`` be (netplan's ``link:``, ``auth:``, a bond's members; an
ifcfg ``MASTER=``): the backend calls `refuse` while planning (before anything
changes) with ``request.force``.

A missing NIC raises `HostNicNotFound` while reading the host.
"""

from __future__ import annotations

import re
from collections.abc import Collection

from ..core.names import validate_ifname
from ..errors import InvalidBridgeName, InvalidName, PreflightRefused
from .model.request import BridgeRequest, HostState
from .runners.runner import Runner

__all__ = ["BRIDGE_IN_USE", "CHECKS", "check_bridge_name", "libvirt_owner", "preflight", "refuse"]

#: The release check: the bridge has other ports than the NIC (guests' taps, another NIC).
BRIDGE_IN_USE = "bridge-in-use"

CHECKS = frozenset(
    {
        "bridge-name",
        "not-a-bridge",
        "wireless",
        "enslaved",
        "vlan-parent",
        "libvirt",
        "br-netfilter",
        "managed",
        "ssh",
        "netboot",
        "802.1x",
        "loopback",
        "infiniband",
        "sriov-vf",
        BRIDGE_IN_USE,
    }
)
_NOT_OVERRIDABLE = frozenset({"bridge-name", "not-a-bridge", "loopback", "infiniband"})


def check_bridge_name(name: str) -> str:
    """``name`` if valid, else PreflightRefused(check="bridge-name") explaining the rules."""
    try:
        return validate_ifname(name, what="bridge")
    except InvalidName as exc:
        raise InvalidBridgeName(str(exc)) from exc


def libvirt_owner(runner: Runner, bridge: str) -> str | None:
    """The libvirt network whose bridge is ``bridge``, from libvirtd's status files
    (``/run/libvirt/network/NAME.xml``, read-only), else None."""
    directory = "/run/libvirt/network"
    for entry in runner.list_dir(directory) or ():
        if not entry.endswith(".xml"):
            continue
        text = (runner.read_file(f"{directory}/{entry}") or b"").decode(errors="replace")
        if re.search(r"<bridge\s[^>]*name=['\"]" + re.escape(bridge) + r"['\"]", text):
            return entry[: -len(".xml")]
    return None


def refuse(check: str, message: str, force: Collection[str]) -> None:
    """Raise PreflightRefused(``message`` + how to override) unless ``check`` is in ``force``.

    Args:
        check: one of `CHECKS`.
        message: what is wrong and what to do.
        force: the checks the caller overrides.

    Raises:
        PreflightRefused: ``check`` is not overridden (or cannot be).
    """
    if check in force and check not in _NOT_OVERRIDABLE:
        return
    suffix = "" if check in _NOT_OVERRIDABLE else f" (override: force=('{check}',))"
    raise PreflightRefused(message + suffix, check=check)


def _refuse_kernel_uppers(
    request: BridgeRequest, current: HostState, force: Collection[str]
) -> None:
    """What /sys says: an SR-IOV VF (``device/physfn``), or upper devices on the NIC (a VLAN,
    macvlan...: ``upper_NAME`` links) that bridging would leave on the port (when the link
    list did not show them as VLANs already)."""
    nic = current.nic.name
    if current.list_dir(f"/sys/class/net/{nic}/device/physfn") is not None:
        refuse(
            "sriov-vf",
            f"{nic} is an SR-IOV virtual function: the PF's embedded switch forwards only the "
            "VF's own MAC, so guests' frames are dropped. Give guests VFs (hostdev), or "
            "bridge the PF",
            force,
        )
    entries = current.list_dir(f"/sys/class/net/{nic}") or ()
    # VLANs only: a macvlan on the NIC is a backend's to move onto the bridge (networkd does).
    uppers = sorted(
        name
        for e in entries
        if e.startswith("upper_")
        and (name := e[len("upper_") :]) != request.bridge
        and b"DEVTYPE=vlan" in (current.read_file(f"/sys/class/net/{name}/uevent") or b"")
    )
    if uppers and current.nic.master is None and not current.vlans:
        refuse(
            "vlan-parent",
            f"{nic} carries {', '.join(uppers)}: bridging it leaves them on the port, without "
            f"the address they were built on. Move them onto {request.bridge} first",
            force,
        )


def preflight(
    request: BridgeRequest,
    current: HostState,
    *,
    force: Collection[str] = (),
    confirm_within: float | None = None,
    libvirt_network: str | None = None,
    dry_run: bool = False,
    backend: str | None = None,
) -> bool:
    """Raise PreflightRefused for the first refusal not in ``force``.

    Returns True when the plan must be applied with a dead-man timer (SSH over the NIC,
    checked again at apply time for a dry-run plan applied later).
    """
    unknown = set(force) - CHECKS
    if unknown:
        raise PreflightRefused(
            f"unknown force= keys {sorted(unknown)}: use {sorted(CHECKS - _NOT_OVERRIDABLE)}",
            check="force",
        )
    nic, br = current.nic, request.bridge
    if current.bridge is not None and not current.bridge.is_bridge:
        kind = current.bridge.kind or "a plain NIC"
        refuse(
            "not-a-bridge",
            f"{br!r} exists and is {kind}, not a bridge: pick another bridge name",
            force,
        )
    if nic.name == "lo" or "LOOPBACK" in nic.flags:
        refuse(
            "loopback",
            f"{nic.name} is the loopback device: the kernel refuses it as a bridge port. "
            "Name the host's Ethernet NIC",
            force,
        )
    if nic.mac.count(":") == 19:
        refuse(
            "infiniband",
            f"{nic.name} is InfiniBand (20-byte address {nic.mac}): the kernel bridges only "
            "Ethernet. Route to the guests over IPoIB, or bridge an Ethernet NIC",
            force,
        )
    if nic.wireless:
        refuse(
            "wireless",
            f"{nic.name} is Wi-Fi: an access point drops frames from MACs that did not "
            "associate, so bridged guests would get nothing. Use NAT (the 'default' network), "
            "a routed network, or macvtap instead",
            force,
        )
    master = current.master
    if master is not None and master.kind == "bond":
        refuse(
            "enslaved",
            f"{nic.name} is a slave of bond {master.name}: bridge the bond ({master.name}) "
            f"instead; its slaves and bond options stay as they are",
            force,
        )
    elif nic.master is not None and nic.master != br:
        refuse(
            "enslaved",
            f"{nic.name} is already a port of {nic.master}: release it from {nic.master} "
            f"first, or bridge guests onto {nic.master}",
            force,
        )
    if current.vlans:
        vlans = ", ".join(current.vlans)
        refuse(
            "vlan-parent",
            f"VLANs ride on {nic.name} ({vlans}): bridging {nic.name} puts its untagged LAN "
            f"into {br}, not those VLANs. To bridge a VLAN, bridge it ({current.vlans[0]}) "
            "into a bridge of its own",
            force,
        )
    _refuse_kernel_uppers(request, current, force)
    if libvirt_network is not None:
        refuse(
            "libvirt",
            f"{br} belongs to libvirt network {libvirt_network!r} (NAT): putting {nic.name} "
            "into it would mix the LAN with the NAT network; choose another bridge name",
            force,
        )
    if current.br_netfilter and (current.forward_policy or "").upper() == "DROP":
        refuse(
            "br-netfilter",
            "br_netfilter is loaded (net.bridge.bridge-nf-call-iptables=1) and iptables' "
            "FORWARD policy is DROP, so bridged guests' traffic would be dropped silently: "
            "add `iptables -I FORWARD -m physdev --physdev-is-bridged -j ACCEPT` or set "
            "net.bridge.bridge-nf-call-iptables=0",
            force,
        )
    daemon = current.managed_by
    if daemon is not None and backend == "iproute2":
        fix = {"NetworkManager": "nmcli", "systemd-networkd": "networkd"}.get(daemon, daemon)
        refuse(
            "managed",
            f"{daemon} manages {nic.name}: changing it behind {daemon}'s back with ip would "
            f"be undone or fought over. Use backend {fix!r}, or stop {daemon} managing it",
            force,
        )
    needs_timer = current.ssh_over_nic and "ssh" not in force
    if needs_timer and confirm_within is None and not dry_run:
        refuse(
            "ssh",
            f"this SSH session runs over {nic.name}: a mistake would cut you off. Apply with "
            "confirm_within=SECONDS (CLI: --confirm-within 60), which rolls back by itself "
            "unless confirmed",
            force,
        )
    return needs_timer
