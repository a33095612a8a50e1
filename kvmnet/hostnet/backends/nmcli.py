"""nmcli: NetworkManager bridges the NIC (RHEL 9+, Fedora, Ubuntu desktop).

Two ways, one result (a bridge profile and a port profile; the NIC's old profile kept):

- **runtime** (default): ``nmcli connection add`` for both profiles, then ``nmcli connection
  up`` the port (NetworkManager activates the bridge with it). The settings are those of
  the NIC's *active* profile, read with ``nmcli -t -f connection,...,ipv4,ipv6,proxy
  connection show`` and split like a keyfile's: link-level ones on the port, IP-level ones
  on the bridge.
- **keyfiles** (``keyfiles=True``, e.g. for an image under ``root``): two ``.nmconnection``
  files (mode 0600) in ``keyfile_dir`` under ``root``, each validated by the real
  ``nmcli --offline connection modify`` before it is put in place, then
  ``nmcli connection reload`` + ``up``. The IP settings come from the NIC's keyfile there.

The bridge has ``bridge.stp no``, ``bridge.forward-delay 0`` (NetworkManager's default STP on
means a ~30 s outage) and ``bridge.mac-address`` = the NIC's MAC (same DHCP lease). Profiles
get fixed UUIDs derived from the names, so every later command is unambiguous, and the port
an ``autoconnect-priority`` above the old profile's, which stays untouched for rollback:
bring it up again and delete the new two.

``bus_address`` points nmcli at a private D-Bus (tests): commands become
``env DBUS_SYSTEM_BUS_ADDRESS=... nmcli ...``.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import posixpath
import uuid

from ...core.names import validate_netns_name
from ...errors import PreflightRefused, ValidationFailed
from ..model.plan import Plan, RemoveFile, RunCommand, Step
from ..model.request import BridgeRequest, HostState
from ..model.state import LinkState
from ..runners.runner import Runner
from .filebackend import (
    FileBackendBase,
    leased_v4,
    on_bus,
    read_text,
    stp_warnings,
    takeover_steps,
    write_step,
)
from .keyfile import Keyfile, mac_value, split_list

__all__ = [
    "CONNECTION_SPLIT",
    "KEYFILE_BRIDGE_SECTIONS",
    "KEYFILE_PORT_SECTIONS",
    "PROFILE_SETTINGS",
    "NmcliBackend",
    "match_interface_name",
    "parse_terse",
    "profile_uuid",
    "split_keyfile",
    "split_properties",
]

KEYFILE_DIR = "/etc/NetworkManager/system-connections"
_NS = uuid.UUID("6c0b6d1e-4b7a-4f55-9a8e-6b766d6e6574")

#: The settings of the NIC's active profile read at runtime (``nmcli -t -f ...``): each
#: property goes to the port or the bridge as in the keyfile split (see the module docs).
PROFILE_SETTINGS = (
    "connection",
    "802-3-ethernet",
    "ethtool",
    "match",
    "sriov",
    "tc",
    "dcb",
    "802-1x",
    "bridge-port",
    "ipv4",
    "ipv6",
    "proxy",
    "hostname",
)
# Values nmcli prints for "not set": copying them only makes the plan longer.
_UNSET = {"", "--"}
_DEFAULTS = {"-1", "no", "default", "unknown", "-1 (unknown)", "0x0"}
# Runtime only: what nmcli shows but a new profile must not get (its own, or NM's record).
_NOT_COPIED = {"connection.timestamp", "connection.read-only"}
_KEEP_DEFAULTS = {"ipv4.method", "ipv6.method"}
_DEFAULT_YES = {"ipv4.may-fail", "ipv6.may-fail"}

#: Keyfile sections (settings) of a wired profile that configure IP: they move to the bridge's
#: profile (nm-settings-keyfile(5), nm-settings-nmcli(5)).
KEYFILE_BRIDGE_SECTIONS = frozenset({"ipv4", "ipv6", "proxy", "hostname"})
#: Sections that configure the wire or the device: they stay on the port's profile.
KEYFILE_PORT_SECTIONS = frozenset(
    {
        "ethernet",
        "802-3-ethernet",
        "ethernet-s390-options",
        "802-3-ethernet-s390-options",
        "802-1x",
        "ethtool",
        "match",
        "sriov",
        "tc",
        "dcb",
        "link",
        "bridge-port",  # the NIC's settings as a bridge port: now they apply
        "user",
        ".nmmeta",
    }
)
_KF_PORT, _KF_BRIDGE, _KF_BOTH, _KF_ROLE, _KF_OURS = "port", "bridge", "both", "role", "ours"
#: ``[connection]`` key -> where it goes: "port" (link-level), "bridge" (IP-level), "both"
#: (meaningful on each: autoconnect, permissions, stable-id), "role" (the NIC is a port of
#: something already: refused) or "ours" (identity: each profile has its own).
CONNECTION_SPLIT: dict[str, str] = {
    **{k: _KF_OURS for k in ("id", "uuid", "type", "interface-name", "autoconnect-priority")},
    **{k: _KF_ROLE for k in ("master", "controller", "slave-type", "port-type")},
    **{k: _KF_BOTH for k in ("autoconnect", "permissions", "stable-id")},
    **{
        k: _KF_PORT
        for k in (
            "auth-retries",  # 802.1X, on the port
            "autoconnect-retries",
            "autoconnect-slaves",
            "autoconnect-ports",
            "lldp",
            "multi-connect",
            "read-only",
            "timestamp",
            "wait-device-timeout",
            "wait-activation-delay",
        )
    },
    **{
        k: _KF_BRIDGE
        for k in (
            "zone",
            "mdns",
            "llmnr",
            "dns-over-tls",
            "dnssec",
            "mptcp-flags",
            "mud-url",
            "gateway-ping-timeout",
            "metered",
            "secondaries",
            "dhcp",
        )
    },
}
_BRIDGE_OURS = ("forward-delay", "mac-address", "stp")


def _worth_copying(key: str, value: str) -> bool:
    value = value.strip()
    if value in _UNSET:
        return False
    if key in _KEEP_DEFAULTS:
        return True
    if key in _DEFAULT_YES:
        return value != "yes"
    return value not in _DEFAULTS


def profile_uuid(kind: str, *names: str) -> str:
    """A fixed UUID for one of kvmnet's profiles (so reruns and rollback find it)."""
    return str(uuid.uuid5(_NS, "/".join((kind, *names))))


def parse_terse(text: str) -> list[list[str]]:
    """``nmcli -t`` output: fields separated by ':', with '\\:' and '\\\\' escaped."""
    rows: list[list[str]] = []
    for line in text.splitlines():
        fields, cur, i = [], [], 0
        while i < len(line):
            c = line[i]
            if c == "\\" and i + 1 < len(line):
                cur.append(line[i + 1])
                i += 2
                continue
            if c == ":":
                fields.append("".join(cur))
                cur = []
            else:
                cur.append(c)
            i += 1
        fields.append("".join(cur))
        rows.append(fields)
    return rows


def _from_state(nic: LinkState) -> dict[str, str]:
    if leased_v4(nic):
        return {"ipv4.method": "auto"}
    v4 = [a for a in nic.global_addresses if a.family == 4]
    if v4:
        return {"ipv4.method": "manual", "ipv4.addresses": ",".join(a.cidr for a in v4)}
    return {"ipv4.method": "disabled"}


def match_interface_name(patterns: list[str], name: str) -> bool:
    """NetworkManager's ``match.interface-name``: shell globs; ``|`` optional (one of them
    must match), ``&`` mandatory (all must), ``!`` inverts (``!x`` is ``&!x``); ``\\``
    escapes the start of the pattern. An empty list matches."""
    optional: list[bool] = []
    for raw in patterns:
        item, mandatory = raw, False
        if item[:1] in ("|", "&"):
            mandatory, item = item[0] == "&", item[1:]
        invert = item.startswith("!")
        if invert:
            mandatory, item = True, item[1:]
        if item.startswith("\\"):
            item = item[1:]
        hit = fnmatch.fnmatchcase(name, item) != invert
        if mandatory and not hit:
            return False
        if not mandatory:
            optional.append(hit)
    return not optional or any(optional)


def _int(raw: str | None) -> int:
    """A keyfile integer (``autoconnect-priority``, ``timestamp``); absent or bad: 0."""
    try:
        return int((raw or "0").strip())
    except ValueError:
        return 0


def split_keyfile(kf: Keyfile, source: str) -> tuple[Keyfile, Keyfile]:
    """Split a NIC's profile into (port part, bridge part), raw values kept as they are.

    Args:
        kf: The NIC's keyfile.
        source: Its file name, for the messages.

    Returns:
        (port, bridge): the NIC's sections and ``[connection]`` keys, each keeping what
        belongs there; the identity keys (id, uuid, type, interface-name,
        autoconnect-priority) go to neither.

    Raises:
        PreflightRefused: the profile is a port already (``master=``/``controller=``), or has
            a section or ``[connection]`` key kvmnet does not know (it would be misplaced).
    """
    port, bridge = Keyfile(), Keyfile()
    for section, entries in kf.sections.items():
        if section == "connection":
            for key, raw in entries.items():
                where = CONNECTION_SPLIT.get(key)
                if where is None:
                    raise PreflightRefused(
                        f"{source}: [connection] {key}={raw} is a property kvmnet does not "
                        "know (not in nm-settings-nmcli(5) of its version), so it cannot tell "
                        "whether it belongs on the port or the bridge; remove it or bridge by "
                        "hand",
                        check="keyfile-unknown-key",
                    )
                if where == _KF_ROLE and raw:
                    raise PreflightRefused(
                        f"{source}: [connection] {key}={raw}: the profile is already a port of "
                        f"{raw}; release it from there first",
                        check="already-port",
                    )
                if where in (_KF_PORT, _KF_BOTH):
                    port.set_raw("connection", key, raw)
                if where in (_KF_BRIDGE, _KF_BOTH):
                    bridge.set_raw("connection", key, raw)
        elif section in KEYFILE_BRIDGE_SECTIONS:
            bridge.sections[section] = dict(entries)
        elif section in KEYFILE_PORT_SECTIONS:
            port.sections[section] = dict(entries)
        else:
            raise PreflightRefused(
                f"{source}: section [{section}] is a setting kvmnet does not know on a wired "
                "profile, so it cannot tell whether it belongs on the port or the bridge; "
                "remove it or bridge by hand",
                check="keyfile-unknown-key",
            )
    return port, bridge


def split_properties(
    settings: dict[str, str], source: str
) -> tuple[dict[str, str], dict[str, str]]:
    """Split a profile's properties as nmcli shows them (``ipv4.method`` -> ``auto``) into
    (port, bridge) the way `split_keyfile` splits a keyfile; values that only repeat
    NetworkManager's defaults are left out (the plan stays readable, nothing changes).

    Args:
        settings: ``setting.property`` -> value, from ``nmcli -t -f ...``.
        source: The profile's name, for the messages.

    Returns:
        (port, bridge) properties.

    Raises:
        PreflightRefused: the profile is a port already, authenticates with 802.1X (its
            secrets would have to go on a command line: use keyfiles), or has a setting
            kvmnet does not know.
    """
    port: dict[str, str] = {}
    bridge: dict[str, str] = {}
    if any(k.startswith("802-1x.") and v.strip() not in _UNSET for k, v in settings.items()):
        raise PreflightRefused(
            f"{source} authenticates with 802.1X: its secrets cannot be carried by nmcli "
            "commands without showing them on a command line; use keyfiles=True (the files "
            "carry them) and `nmcli connection reload`",
            check="802.1x-runtime",
        )
    for key, value in settings.items():
        section, _, prop = key.partition(".")
        if key in _NOT_COPIED or not _worth_copying(key, value) or value == "<hidden>":
            continue
        if section == "connection":
            where = CONNECTION_SPLIT.get(prop)
            if where is None:
                raise PreflightRefused(
                    f"{source}: {key}={value} is a property kvmnet does not know, so it cannot "
                    "tell whether it belongs on the port or the bridge; remove it or bridge by "
                    "hand",
                    check="keyfile-unknown-key",
                )
            if where == _KF_ROLE:
                raise PreflightRefused(
                    f"{source}: {key}={value}: the profile is already a port of {value}; "
                    "release it from there first",
                    check="already-port",
                )
            if where in (_KF_PORT, _KF_BOTH):
                port[key] = value
            if where in (_KF_BRIDGE, _KF_BOTH):
                bridge[key] = value
        elif section in KEYFILE_BRIDGE_SECTIONS:
            bridge[key] = value
        elif section in KEYFILE_PORT_SECTIONS:
            port[key] = value
        else:
            raise PreflightRefused(
                f"{source}: {key}={value} belongs to a setting kvmnet does not know on a wired "
                "profile; remove it or bridge by hand",
                check="keyfile-unknown-key",
            )
    return port, bridge


def _numbered(entries: dict[str, str]) -> set[str]:
    """Keys that are one element of a numbered list (address1, routes2_options...)."""
    return {
        k
        for k in entries
        if k.rstrip("0123456789").split("_")[0] in ("address", "addresses", "route", "routes",
                                                       "routing-rule")
    }  # fmt: skip


def merge_keyfiles(
    base: Keyfile, extra: Keyfile, what: str, notes: dict[tuple[str, str], str] | None = None
) -> Keyfile:
    """``base`` with ``extra``'s keys added; a key both set differently, or numbered
    addresses/routes on both sides, is refused (the numbers would collide).

    Args:
        base: The profile merged into.
        extra: The profile whose keys are added.
        what: Says who disagrees, for the message.
        notes: ``(section, key)`` -> where a value comes from, when neither profile wrote it
            (`_spell_out_methods`), added to the message.

    Returns:
        The merged profile (``base`` and ``extra`` stay as they are).

    Raises:
        PreflightRefused: the two disagree.
    """
    out = Keyfile({name: dict(entries) for name, entries in base.sections.items()})
    for section, entries in extra.sections.items():
        have = out.sections.setdefault(section, {})
        if _numbered(have) and _numbered(entries):
            raise PreflightRefused(
                f"[{section}]: {what}: both give addresses or routes; put them in one profile",
                check="keyfile-conflict",
            )
        for key, raw in entries.items():
            if key in have and have[key] != raw:
                note = (notes or {}).get((section, key))
                raise PreflightRefused(
                    f"[{section}] {key}: {what} ({have[key]!r} vs {raw!r}"
                    + (f"; {note}" if note else "")
                    + "); make them agree, or remove one",
                    check="keyfile-conflict",
                )
            have[key] = raw
    return out


#: The IP settings NetworkManager gives a profile that leaves them out: its normalisation
#: (libnm-core nm-connection.c, ``_normalize_ip_config``, the same since 0.9.10; the keyfile
#: reader normalises with no parameters) adds ``[ipv4] method=auto`` (DHCP) and ``[ipv6]
#: method=auto`` (SLAAC, DHCPv6 as the router says) to every type but wireguard and dummy, so
#: to the ethernet and bridge profiles read here (``nmcli --offline`` shows the same). An
#: added ``[ipv6]`` also has ``addr-gen-mode=default`` (1.40+), where a written ``[ipv6]``
#: without ``addr-gen-mode=`` reads as EUI-64: a section no profile wrote is therefore left
#: out of kvmnet's bridge profile too, and NetworkManager gives the bridge the same defaults.
_IP_SECTIONS = ("ipv4", "ipv6")
_IMPLICIT_METHOD = "auto"


def _spell_out_methods(kf: Keyfile, source: str) -> tuple[Keyfile, dict[tuple[str, str], str]]:
    """``kf`` with ``method=`` of ``[ipv4]`` and ``[ipv6]`` as NetworkManager reads the profile,
    so that a method left to NetworkManager's default meets the other profile's method by the
    same rule as one written out (an absent ``[ipv4]`` is DHCP, not "nothing").

    Args:
        kf: An ethernet or bridge profile, or its IP part (`split_keyfile`).
        source: Its file name, for the messages.

    Returns:
        (the profile with both methods written out, ``(section, "method")`` -> why, for each
        method that was added).

    Raises:
        PreflightRefused: ``check="keyfile-invalid"``: an ``[ipv4]``/``[ipv6]`` section without
            ``method=`` (or with an empty one): NetworkManager rejects the whole profile
            ("ipv4.method: property is missing"), so it is not what runs.
    """
    out = Keyfile({name: dict(entries) for name, entries in kf.sections.items()})
    notes: dict[tuple[str, str], str] = {}
    for section in _IP_SECTIONS:
        if section not in kf.sections:
            out.set(section, "method", _IMPLICIT_METHOD)
            notes[(section, "method")] = (
                f"{source} has no [{section}] section, which NetworkManager reads as "
                f"method={_IMPLICIT_METHOD}"
            )
        elif not (kf.get(section, "method") or "").strip():
            raise PreflightRefused(
                f"{source}: [{section}] has no method=: NetworkManager rejects the profile "
                f"({section}.method: property is missing) and never runs it; add the method "
                "it should have (auto, manual, disabled...) or remove the section",
                check="keyfile-invalid",
            )
    return out, notes


@dataclasses.dataclass(frozen=True)
class _Profile:
    """A keyfile found under the keyfile folder: its file name and parsed content."""

    name: str
    kf: Keyfile

    @property
    def ident(self) -> tuple[str, str]:
        """How nmcli names it: ("uuid", UUID), else ("id", ID), else the file name's stem
        (NetworkManager's id for a keyfile without one)."""
        uuid_ = self.kf.get("connection", "uuid")
        if uuid_:
            return "uuid", uuid_
        id_ = self.kf.get("connection", "id")
        stem = self.name[: -len(".nmconnection")] if self.name.endswith(".nmconnection") else ""
        return "id", id_ or stem or self.name


class NmcliBackend(FileBackendBase):
    """NetworkManager through nmcli (runtime, in ``netns``) or keyfiles (under ``root``).

    Args:
        root: Where the configuration lives; other than ``/`` means keyfiles.
        netns: The network namespace nmcli and ip act in.
        runner: Runs the commands (default: one for ``netns``).
        keyfiles: Write ``.nmconnection`` files instead of ``nmcli connection add``.
        keyfile_dir: The keyfile folder (under ``root``).
        bus_address: A D-Bus address for nmcli (a private bus in tests).
        validate: Check every keyfile with the real ``nmcli --offline`` before writing it.
        files_only: Only write the keyfiles: no nmcli, ip or kill on this machine, nothing
            verified. None (default): with keyfiles, unless ``netns`` says where they are
            live (a lab whose NetworkManager reads ``keyfile_dir``).
    """

    name = "nmcli"
    config_dirs = (KEYFILE_DIR,)

    def __init__(
        self,
        *,
        root: str = "/",
        netns: str | None = None,
        runner: Runner | None = None,
        keyfiles: bool = False,
        keyfile_dir: str = KEYFILE_DIR,
        bus_address: str | None = None,
        validate: bool = True,
        files_only: bool | None = None,
    ) -> None:
        if netns is not None:
            validate_netns_name(netns)
        super().__init__(root=root, netns=netns, runner=runner)
        self.keyfiles = keyfiles or self.paths.root != "/"
        self.keyfile_dir = keyfile_dir
        self.bus_address = bus_address
        self.validate = validate
        # Writing keyfiles (for an image, another root) must not touch this machine's
        # NetworkManager; a netns (a lab whose NetworkManager reads keyfile_dir) says where
        # they are live.
        self.files_only = self.keyfiles and netns is None if files_only is None else files_only

    def __repr__(self) -> str:
        how = f"keyfiles in {self.paths(self.keyfile_dir)!r}" if self.keyfiles else "runtime"
        return f"<NmcliBackend {how} runner={self._runner!r}>"

    def nmcli(self, *args: str) -> tuple[str, ...]:
        """The ``nmcli`` argv, on the backend's D-Bus when one is set.

        Args:
            *args: nmcli's arguments.

        Returns:
            The argv to run.
        """
        return on_bus(self.bus_address, "nmcli", *args)

    # -- reading (read-only queries through the runner) -----------------------------------
    def active_profile(self, device: str) -> tuple[str, str] | None:
        """The profile active on ``device``, if any.

        Args:
            device: the interface's name.

        Returns:
            ``(name, uuid)``, or None.
        """
        argv = self.nmcli("-t", "-f", "NAME,UUID,DEVICE", "connection", "show", "--active")
        result = self._runner.run(argv, check=False)
        if not result.ok:
            why = " ".join(result.stderr.split()) or "no output"
            raise PreflightRefused(
                f"nmcli cannot reach NetworkManager ({why}):"
                " start NetworkManager, use keyfiles=True to only write files, or pick another"
                " backend",
                check="networkmanager",
            )
        out = result.stdout
        for row in parse_terse(out):
            if len(row) >= 3 and row[2] == device:
                return row[0], row[1]
        return None

    def profile_settings(self, profile_uuid_: str) -> dict[str, str]:
        """Every property of the profile's `PROFILE_SETTINGS`, as nmcli shows it.

        Args:
            profile_uuid_: the profile's UUID.

        Returns:
            Property -> value.
        """
        fields = ",".join(PROFILE_SETTINGS)
        out = self._runner.run(
            self.nmcli("-t", "-f", fields, "connection", "show", "uuid", profile_uuid_)
        ).stdout
        values: dict[str, str] = {}
        for row in parse_terse(out):
            if len(row) >= 2:
                values[row[0]] = ":".join(row[1:])
        return values

    def _existing_uuids(self) -> set[str]:
        out = self._runner.run(self.nmcli("-t", "-f", "UUID", "connection", "show")).stdout
        return {row[0] for row in parse_terse(out) if row and row[0]}

    # -- planning -------------------------------------------------------------------------
    def plan_enslave(self, request: BridgeRequest, current: HostState) -> Plan:
        """Plan bridging ``request.nic`` into ``request.bridge``: a bridge profile takes the NIC's
        IP settings, the NIC's profile becomes its port (nmcli at run time, or keyfiles under
        ``root``).

        Args:
            request: what is wanted: the NIC, the bridge and the options.
            current: the host as it is now: links, routes, DHCP clients, and files read under
                the backend's ``root``.

        Returns:
            The `Plan`; nothing is changed (``plan.apply()`` runs it).
        """
        if self.keyfiles:
            return self._plan_keyfiles(request, current)
        return self._plan_runtime(request, current)

    def _uuids(self, request: BridgeRequest) -> tuple[str, str]:
        return (
            profile_uuid("bridge", request.bridge),
            profile_uuid("port", request.bridge, request.nic),
        )

    def _activation(self, request: BridgeRequest, current: HostState) -> list[Step]:
        br_uuid, port_uuid = self._uuids(request)
        steps: list[Step] = []
        if current.bridge is not None:
            if current.bridge.mac.lower() != current.nic.mac.lower():
                # NM finds no "compatible device" for a profile whose bridge.mac-address
                # differs from the existing bridge's.
                steps.append(
                    RunCommand(
                        ("ip", "link", "set", request.bridge, "address", current.nic.mac),
                        f"{current.nic.name}'s MAC, as the profile says",
                    )
                )
            # NM "assumes" a bridge it did not create (an external connection); a port would
            # join that one, and our profile would never run: take the device over first.
            steps.append(
                RunCommand(
                    self.nmcli("connection", "up", "uuid", br_uuid),
                    f"take over the existing {request.bridge} from NetworkManager's external one",
                )
            )
        steps.append(
            RunCommand(
                self.nmcli("connection", "up", "uuid", port_uuid),
                f"activating the port brings {request.bridge} up too",
            )
        )
        return steps

    def _plan_runtime(self, request: BridgeRequest, current: HostState) -> Plan:
        nic, br = current.nic, request.bridge
        br_uuid, port_uuid = self._uuids(request)
        warnings = stp_warnings(request)
        active = self.active_profile(nic.name)
        link: dict[str, str] = {}
        if active:
            settings = self.profile_settings(active[1])
            priority = _int(settings.pop("connection.autoconnect-priority", "0"))
            link, ip = split_properties(settings, repr(active[0]))
        else:
            priority, ip = 0, _from_state(nic)
            warnings.append(
                f"no active NetworkManager profile on {nic.name}: {br} takes "
                f"{ip['ipv4.method']} from its runtime state"
            )
        existing = self._existing_uuids()
        steps: list[Step] = [
            RunCommand(
                self.nmcli("connection", "delete", "uuid", u),
                "kvmnet's profile from an earlier run",
            )
            for u in (port_uuid, br_uuid)
            if u in existing
        ]
        source = f"IP settings of {active[0]!r}" if active else "IP settings from the kernel"
        steps += self._add_profiles(request, nic, ip, priority, source, link=link)
        steps += takeover_steps(current, request)
        steps += self._activation(request, current)
        hints: list[Step] = []
        if active:
            hints.append(
                RunCommand(
                    self.nmcli("connection", "up", "uuid", active[1]), f"{nic.name}'s old profile"
                )
            )
        hints += [
            RunCommand(self.nmcli("connection", "delete", "uuid", u)) for u in (port_uuid, br_uuid)
        ]
        return self._plan(
            "enslave",
            request,
            current,
            steps,
            warnings=warnings,
            rollback_hints=hints,
            restore_runtime=False,
        )

    def _add_profiles(
        self,
        request: BridgeRequest,
        nic: LinkState,
        ip: dict[str, str],
        priority: int,
        source: str,
        *,
        link: dict[str, str] | None = None,
    ) -> list[Step]:
        """``nmcli connection add`` of the bridge profile (``ip`` settings, the NIC's MAC) and
        of the port profile (``link`` settings), one ``autoconnect-priority`` above the old
        profile's."""
        br = request.bridge
        br_uuid, port_uuid = self._uuids(request)
        stp = "yes" if request.stp else "no"
        bridge_props = [
            *("connection.uuid", br_uuid, "bridge.stp", stp),
            *("bridge.forward-delay", str(request.forward_delay), "bridge.mac-address", nic.mac),
            *(word for item in ip.items() for word in item),
        ]
        port_props = [
            *("connection.uuid", port_uuid, "connection.master", br),
            *("connection.slave-type", "bridge"),
            *("connection.autoconnect-priority", str(priority + 1)),
            *(word for item in (link or {}).items() for word in item),
        ]
        port_name = f"{br}-port-{nic.name}"
        add = ("connection", "add", "type")
        return [
            RunCommand(
                self.nmcli(*add, "bridge", "con-name", br, "ifname", br, *bridge_props), source
            ),
            RunCommand(
                self.nmcli(
                    *add, "ethernet", "con-name", port_name, "ifname", nic.name, *port_props
                ),
                "outranks the old profile at boot; the old one stays for rollback",
            ),
        ]

    # -- keyfiles ---------------------------------------------------------------------------
    def _profiles(self, current: HostState) -> list[_Profile]:
        directory = self.paths(self.keyfile_dir)
        out: list[_Profile] = []
        for name in sorted(current.list_dir(directory) or ()):
            if not name.endswith(".nmconnection") or name.startswith("kvmnet-"):
                continue
            text = read_text(current, posixpath.join(directory, name))
            if text is not None:
                out.append(_Profile(name, Keyfile.parse(text)))
        return out

    def _nic_profiles(self, current: HostState) -> list[_Profile]:
        """The wired profiles that can run on the NIC, the one NetworkManager picks first:
        autoconnect on, then the highest ``autoconnect-priority``, then the closest binding
        (``interface-name=``, MAC, a ``[match] interface-name`` glob, none), then the most
        recent ``timestamp``."""
        nic = current.nic
        ranked: list[tuple[tuple[int, int, int, int, int], _Profile]] = []
        for n, profile in enumerate(self._profiles(current)):
            kf = profile.kf
            kind = kf.get("connection", "type")
            has_eth = "ethernet" in kf.sections or "802-3-ethernet" in kf.sections
            if kind not in ("ethernet", "802-3-ethernet") and not (kind is None and has_eth):
                continue
            ifname = kf.get("connection", "interface-name")
            mac = mac_value(kf.get("ethernet", "mac-address") or "")
            mac = mac or mac_value(kf.get("802-3-ethernet", "mac-address") or "")
            globs = split_list(kf.get("match", "interface-name") or "")
            if ifname and ifname != nic.name:
                continue
            if mac and mac != nic.mac.lower():
                continue
            if not match_interface_name(globs, nic.name):
                continue
            off = (kf.get("connection", "autoconnect") or "true").lower() in ("false", "0", "no")
            binding = 0 if ifname else 1 if mac else 2 if globs else 3
            key = (int(off), -_int(kf.get("connection", "autoconnect-priority")), binding,
                   -_int(kf.get("connection", "timestamp")), n)  # fmt: skip
            ranked.append((key, profile))
        return [profile for _, profile in sorted(ranked, key=lambda r: r[0])]

    def _bridge_profile(self, current: HostState, bridge: str) -> _Profile | None:
        """A bridge profile of someone else's for ``bridge`` (merged, never shadowed)."""
        for profile in self._profiles(current):
            kf = profile.kf
            if kf.get("connection", "type") != "bridge":
                continue
            globs = split_list(kf.get("match", "interface-name") or "")
            if kf.get("connection", "interface-name") == bridge or (
                globs and match_interface_name(globs, bridge)
            ):
                return profile
        return None

    def render_keyfiles(
        self,
        request: BridgeRequest,
        nic: LinkState,
        source: Keyfile | None,
        *,
        source_name: str = "the NIC's profile",
        bridge_source: Keyfile | None = None,
        bridge_name: str = "the bridge's profile",
        priority: int | None = None,
    ) -> tuple[str, str]:
        """(bridge keyfile, port keyfile) texts.

        Args:
            request: The NIC, the bridge and its STP/forward delay.
            nic: The NIC as the kernel reports it.
            source: The NIC's profile (None: IP settings from ``nic``'s addresses).
            source_name: Its file name, for messages.
            bridge_source: An existing profile of the bridge, carried into kvmnet's.
            bridge_name: Its file name, for messages.
            priority: The highest ``autoconnect-priority`` of the profiles that could run on
                the NIC (default: ``source``'s); the port's is one above.

        Returns:
            The two texts.

        Raises:
            PreflightRefused: see `split_keyfile` and `merge_keyfiles`; ``[ipv4]``/``[ipv6]``
                of either profile that has no ``method=`` (``keyfile-invalid``). A profile
                without ``[ipv4]``/``[ipv6]`` has NetworkManager's ``method=auto`` (DHCP,
                SLAAC) and conflicts as if it said so.
        """
        br_uuid, port_uuid = self._uuids(request)
        head = f"# Written by kvmnet: bridge {request.bridge} with port {nic.name}.\n"
        notes: dict[tuple[str, str], str] = {}
        if source is not None:
            port_part, ip_part = split_keyfile(source, source_name)
            written = {s for s in _IP_SECTIONS if s in ip_part.sections}
            ip_part, notes = _spell_out_methods(ip_part, source_name)
        else:
            # From the kernel: IPv4 only; IPv6 is not guessed, so it meets no other method.
            port_part, ip_part = Keyfile(), Keyfile()
            for key, value in _from_state(nic).items():
                section, prop = key.split(".", 1)
                ip_part.set(section, prop if prop != "addresses" else "address1", value)
            written = set(ip_part.sections)
        if priority is None:
            priority = _int(source.get("connection", "autoconnect-priority") if source else None)

        bridge = Keyfile()
        bridge.set("connection", "id", request.bridge)
        bridge.set("connection", "uuid", br_uuid)
        bridge.set("connection", "type", "bridge")
        bridge.set("connection", "interface-name", request.bridge)
        if bridge_source is not None:
            theirs = Keyfile(
                {
                    name: {
                        k: v
                        for k, v in entries.items()
                        if not (name == "connection" and CONNECTION_SPLIT.get(k) == _KF_OURS)
                        and not (name == "bridge" and k in _BRIDGE_OURS)
                    }
                    for name, entries in bridge_source.sections.items()
                }
            )
            written |= {s for s in _IP_SECTIONS if s in theirs.sections}
            theirs, their_notes = _spell_out_methods(theirs, bridge_name)
            notes = {**their_notes, **notes}
            theirs_priority = bridge_source.get("connection", "autoconnect-priority") or "0"
            # Outranks the bridge's own profile, which stays as it was for release.
            bridge.set("connection", "autoconnect-priority", str(int(theirs_priority) + 1))
            bridge = merge_keyfiles(bridge, theirs, f"kvmnet and {bridge_name} disagree")
        bridge.set("bridge", "forward-delay", str(request.forward_delay))
        bridge.set("bridge", "mac-address", nic.mac.upper())
        bridge.set("bridge", "stp", "true" if request.stp else "false")
        bridge = merge_keyfiles(bridge, ip_part, f"{bridge_name} and {source_name} disagree", notes)
        for section in _IP_SECTIONS:
            if section not in written:
                # No profile wrote it: left out, NetworkManager gives the bridge the defaults
                # it gave them (see _IP_SECTIONS).
                bridge.sections.pop(section, None)

        port = Keyfile()
        port.set("connection", "id", f"{request.bridge}-port-{nic.name}")
        port.set("connection", "uuid", port_uuid)
        port.set("connection", "type", "ethernet")
        port.set("connection", "interface-name", nic.name)
        port.set("connection", "autoconnect-priority", str(priority + 1))
        port.set("connection", "master", request.bridge)
        port.set("connection", "slave-type", "bridge")
        for section, entries in port_part.sections.items():
            for key, raw in entries.items():
                port.set_raw(section, key, raw)
        if "ethernet" not in port.sections and "802-3-ethernet" not in port.sections:
            port.sections["ethernet"] = {}
        return bridge.render(head), port.render(head)

    def validate_keyfile(self, text: str, name: str) -> None:
        """The real ``nmcli --offline connection modify`` must accept the keyfile.

        Args:
            text: the keyfile's text.
            name: its file name, for the message.

        Raises:
            ValidationFailed: nmcli rejects it.
        """
        profile_id = Keyfile.parse(text).get("connection", "id") or name
        result = self._runner.run(
            ["nmcli", "--offline", "connection", "modify", "connection.id", profile_id],
            input=text,
            check=False,
        )
        if not result.ok:
            raise ValidationFailed(
                f"nmcli --offline rejected the keyfile {name}: "
                f"{(result.stderr or result.stdout).strip()} (nothing was written)"
            )

    def _plan_keyfiles(self, request: BridgeRequest, current: HostState) -> Plan:
        nic, br = current.nic, request.bridge
        candidates = self._nic_profiles(current)
        found = candidates[0] if candidates else None
        # The port outranks every profile that could run on the NIC, not only the first.
        top = max((_int(p.kf.get("connection", "autoconnect-priority")) for p in candidates),
                  default=0)  # fmt: skip
        theirs = self._bridge_profile(current, br)
        warnings = stp_warnings(request)
        if found is None:
            warnings.append(
                f"no keyfile in {self.keyfile_dir} describes {nic.name}: "
                f"{br} takes its IP settings from the kernel"
            )
        elif "802-1x" in found.kf.sections:
            warnings.append(
                f"{found.name} authenticates {nic.name} with 802.1X (kept on the port): a "
                "switch port that admits only the authenticated MAC drops the guests' frames"
            )
        if theirs is not None:
            for key, value in (
                ("stp", "true" if request.stp else "false"),
                ("forward-delay", str(request.forward_delay)),
            ):
                have = theirs.kf.get("bridge", key)
                if have is not None and have != value:
                    warnings.append(
                        f"{theirs.name} says [bridge] {key}={have}; kvmnet's profile, which "
                        f"outranks it, says {value} (the rest of it is carried)"
                    )
        bridge_text, port_text = self.render_keyfiles(
            request,
            nic,
            found.kf if found else None,
            source_name=found.name if found else "the NIC's state",
            bridge_source=theirs.kf if theirs else None,
            bridge_name=theirs.name if theirs else "",
            priority=top,
        )
        directory = self.paths(self.keyfile_dir)
        names = (f"kvmnet-{br}.nmconnection", f"kvmnet-{br}-port-{nic.name}.nmconnection")
        if self.validate:
            for name, text in zip(names, (bridge_text, port_text), strict=True):
                self.validate_keyfile(text, name)
        steps: list[Step] = [
            write_step(
                current,
                posixpath.join(directory, names[0]),
                bridge_text,
                mode=0o600,
                why="validated by nmcli --offline"
                + (f"; IP settings from {found.name}" if found else "")
                + (f"; carries {theirs.name}" if theirs else ""),
            ),
            write_step(
                current,
                posixpath.join(directory, names[1]),
                port_text,
                mode=0o600,
                why="validated by nmcli --offline; link settings"
                + (f" from {found.name}, which stays" if found else ""),
            ),
        ]
        if self.files_only:
            warnings.append(
                f"only files are written in {directory}: nothing runs or is verified on this "
                "machine; NetworkManager reads them at its next start or `nmcli connection "
                "reload`"
            )
            plan = self._plan(
                "enslave", request, current, steps, warnings=warnings, restore_runtime=False
            )
            return dataclasses.replace(plan, checks=())
        steps += takeover_steps(current, request)
        steps.append(RunCommand(self.nmcli("connection", "reload"), "read the new keyfiles"))
        steps += self._activation(request, current)
        hints: list[Step] = [RunCommand(self.nmcli("connection", "reload"))]
        if found is not None:
            # A profile without uuid= (netplan's, a hand-written one) is named by its id, or
            # by its file name, which NetworkManager takes as the id then.
            how, ident = found.ident
            hints.append(
                RunCommand(self.nmcli("connection", "up", how, ident), f"{nic.name}'s old profile")
            )
        return self._plan(
            "enslave",
            request,
            current,
            steps,
            warnings=warnings,
            rollback_hints=hints,
            restore_runtime=False,
        )

    def plan_release(self, request: BridgeRequest, current: HostState) -> Plan:
        """Delete kvmnet's two profiles and bring the NIC's own profile back.

        Args:
            request: The NIC and the bridge.
            current: The host as it is.

        Returns:
            The plan (files only, when `files_only`).
        """
        nic, br = current.nic.name, request.bridge
        br_uuid, port_uuid = self._uuids(request)
        steps: list[Step] = []
        if self.keyfiles:
            directory = self.paths(self.keyfile_dir)
            for name in (f"kvmnet-{br}.nmconnection", f"kvmnet-{br}-port-{nic}.nmconnection"):
                path = posixpath.join(directory, name)
                previous = read_text(current, path)
                if previous is not None:
                    steps.append(RemoveFile(path, previous=previous))
            if self.files_only:
                plan = self._plan("release", request, current, steps, restore_runtime=False)
                return dataclasses.replace(plan, checks=())
            steps.append(RunCommand(self.nmcli("connection", "reload")))
        else:
            steps += [
                RunCommand(self.nmcli("connection", "delete", "uuid", u))
                for u in (port_uuid, br_uuid)
            ]
        steps.append(
            RunCommand(
                self.nmcli("device", "connect", nic), f"{nic}'s own profile takes over again"
            )
        )
        return self._plan("release", request, current, steps, restore_runtime=False)
