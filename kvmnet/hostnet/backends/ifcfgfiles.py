"""The ifcfg texts kvmnet writes, and their exact inverse.

Bridging edits the NIC's file *in place*: every IP-level line (see `.ifcfgkeys`) is
moved verbatim (its quoting, spacing and trailing comment included) into ``ifcfg-BR`` and
leaves a marker comment where it stood; a membership line overridden with
``force=("enslaved",)`` is commented out behind a marker; ``BRIDGE=BR`` is appended after
a note. Releasing puts each moved line back at its marker, un-comments what was disabled
and drops what was added, so bridge + release gives back the original bytes. A key added
to ``ifcfg-BR`` in between goes to the end of the NIC's file; a moved key deleted from
``ifcfg-BR`` in between stays deleted. The NIC's file keeps its line ends: in a CRLF file
the markers and ``BRIDGE=`` end in CRLF too; ``ifcfg-BR``, a new file, ends its lines in LF
(the moved lines without their CR, which release puts back).

Companion files (``route-``, ``route6-``, ``rule-``, ``rule6-``) are renamed to the bridge's
name; ``ifcfg-BR`` records each original name (and whether ``dev NIC`` was rewritten) in a
comment, so releasing restores name and bytes.

Usage::

    port = render_port(nic_doc, "br0")
    bridge = render_bridge(nic_doc, bridge="br0", nic="eth0", mac=mac, stp=False,
                           forward_delay=0)
    back = restore_port(port, bridge)      # back.render() == nic_doc.render()
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

from .ifcfgkeys import classify
from .nmcli import profile_uuid
from .shellvars import Line, ShellVars, quote

__all__ = [
    "COMPANION_KINDS",
    "Companion",
    "bridge_uuid",
    "companion_notes",
    "is_kvmnet_bridge",
    "render_bridge",
    "render_port",
    "restore_port",
    "retarget",
]

COMPANION_KINDS = ("route", "route6", "rule", "rule6")

_MOVED = "# kvmnet moved {key} to ifcfg-{bridge}"
_MOVED_RE = re.compile(r"^# kvmnet moved (?P<key>[A-Za-z_][A-Za-z0-9_]*) to ifcfg-\S+$")
_PORT_NOTE = "# kvmnet: {nic} is a port of {bridge}; release removes this line and the next"
_PORT_NOTE_RE = re.compile(
    r"^# kvmnet: \S+ is a port of \S+; release removes this line and the next$"
)
_DISABLED = "# kvmnet disabled: "
_HEADER_START = "# Written by kvmnet: "
_COMPANION_RE = re.compile(
    r"^# kvmnet: (?P<new>\S+) was (?P<old>\S+)(?: \(dev (?P<nic>\S+) renamed\))?$"
)
_DEV_WORDS = r"(\b(?:dev|iif|oif)\s+){name}(?=\s|$)"


def bridge_uuid(bridge: str) -> str:
    """The UUID kvmnet gives ``ifcfg-BR`` (the same on every run, so reruns find it)."""
    return profile_uuid("ifcfg-bridge", bridge)


@dataclass(frozen=True)
class Companion:
    """A route/rule file moving with the addresses: ``old`` -> ``new`` (file names), and
    whether its ``dev``/``iif``/``oif`` words were renamed from ``nic`` to the bridge."""

    old: str
    new: str
    nic: str | None = None

    @property
    def note(self) -> str:
        renamed = f" (dev {self.nic} renamed)" if self.nic else ""
        return f"# kvmnet: {self.new} was {self.old}{renamed}"


def retarget(text: str, old: str, new: str) -> str:
    """``dev OLD`` (and ``iif``/``oif``) in ``ip route``/``ip rule`` lines become ``NEW``."""
    return re.sub(_DEV_WORDS.format(name=re.escape(old)), rf"\g<1>{new}", text)


def render_port(nic_file: ShellVars, bridge: str, *, nic: str | None = None) -> ShellVars:
    """The NIC's file as a port of ``bridge``: IP-level lines replaced by markers, membership
    lines (``MASTER=``, ``BRIDGE=``...) disabled, ``BRIDGE=`` appended; the rest untouched.

    Args:
        nic_file: the NIC's parsed ifcfg file.
        bridge: the bridge's name.
        nic: the NIC's name for the note (default: ``DEVICE=``, else "the NIC").

    Returns:
        The port's file (a new object; ``nic_file`` is not changed).
    """
    name = nic or nic_file.get("DEVICE") or "the NIC"
    lines: list[Line] = []
    for line in nic_file.lines:
        kind = classify(line.key) if line.key is not None else None
        if kind == "ip":
            lines.append(Line(_MOVED.format(key=line.key, bridge=bridge)))
        elif kind == "membership":
            lines.append(Line(_DISABLED + line.text))
        else:
            lines.append(line)
    lines.append(Line(_PORT_NOTE.format(nic=name, bridge=bridge)))
    lines.append(Line(f"BRIDGE={quote(bridge)}", "BRIDGE", bridge))
    return ShellVars(
        lines, final_newline=nic_file.final_newline or not nic_file.lines, newline=nic_file.newline
    )


def render_bridge(
    nic_file: ShellVars,
    *,
    bridge: str,
    nic: str,
    mac: str,
    stp: bool,
    forward_delay: int,
    companions: Sequence[Companion] = (),
) -> ShellVars:
    """A fresh ``ifcfg-BR`` carrying, verbatim and in order, the NIC file's IP-level lines.

    ``ONBOOT`` and ``NM_CONTROLLED`` are copied from the NIC (a NIC that does not start at
    boot gives a bridge that does not either: the bridge would come up without its port).
    No ``BOOTPROTO`` is added when the NIC had none: both readers default it the same way.

    Args:
        nic_file: the NIC's parsed ifcfg file.
        bridge: the bridge's name.
        nic: the NIC's name.
        mac: the MAC the bridge takes (the NIC's).
        stp: spanning tree on or off.
        forward_delay: seconds.
        companions: route/rule files renamed for the bridge (recorded for release).

    Returns:
        The bridge's file.
    """
    out = ShellVars()
    out.lines.append(
        Line(
            f"{_HEADER_START}bridge {bridge} with port {nic}; IP settings moved from its ifcfg file"
        )
    )
    out.lines += [Line(c.note) for c in companions]
    # A fixed UUID: NetworkManager's ifcfg-rh would derive one from the path, and the name
    # "br0" may be taken by NM's own profile for a bridge it found already there.
    for key, value in (
        ("DEVICE", bridge),
        ("NAME", bridge),
        ("UUID", bridge_uuid(bridge)),
        ("TYPE", "Bridge"),
        ("ONBOOT", nic_file.get("ONBOOT") or "yes"),
    ):
        out.set(key, value)
    out.lines += [ln for ln in nic_file.lines if ln.key is not None and classify(ln.key) == "ip"]
    out.set("STP", "yes" if stp else "no")
    out.set("DELAY", str(forward_delay))
    out.set("MACADDR", mac)
    out.set("BRIDGE_MACADDR", mac)
    nm = nic_file.get("NM_CONTROLLED")
    if nm is not None:
        out.set("NM_CONTROLLED", nm)
    return out


def restore_port(port_file: ShellVars, bridge_file: ShellVars) -> ShellVars:
    """The inverse of `render_port`: the bridge's IP-level lines back at their markers.

    Args:
        port_file: the port's parsed file (as `render_port` left it, maybe edited).
        bridge_file: the bridge's parsed file.

    Returns:
        The NIC's file as it was before bridging (plus IP-level keys added to the bridge
        since, at its end).
    """
    queues: dict[str, deque[Line]] = {}
    for ln in bridge_file.lines:
        if ln.key is not None and classify(ln.key) == "ip":
            queues.setdefault(ln.key, deque()).append(ln)
    out: list[Line] = []
    for ln in port_file.lines:
        moved = _MOVED_RE.match(ln.text)
        if moved:
            queue = queues.get(moved["key"])
            if queue:
                out.append(queue.popleft())
            continue
        if _PORT_NOTE_RE.match(ln.text) or ln.key == "BRIDGE":
            # Ours (after the note, or an older kvmnet's without one): the NIC's own
            # BRIDGE= line, if it had one, is behind a "disabled" marker.
            continue
        if ln.text.startswith(_DISABLED):
            out += ShellVars.parse(ln.text[len(_DISABLED) :]).lines
            continue
        out.append(ln)
    for queue in queues.values():
        out += queue
    return ShellVars(out, final_newline=port_file.final_newline, newline=port_file.newline)


def is_kvmnet_bridge(doc: ShellVars) -> bool:
    """Whether ``doc`` is a bridge file `render_bridge` wrote (its first line says so)."""
    return bool(doc.lines) and doc.lines[0].text.startswith(_HEADER_START)


def companion_notes(bridge_file: ShellVars) -> dict[str, Companion]:
    """The companion files ``ifcfg-BR`` records, by their current (bridge) name."""
    found: dict[str, Companion] = {}
    for ln in bridge_file.lines:
        m = _COMPANION_RE.match(ln.text) if ln.key is None else None
        if m:
            found[m["new"]] = Companion(m["old"], m["new"], m["nic"])
    return found
