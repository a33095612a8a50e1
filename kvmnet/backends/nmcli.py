"""nmcli: NetworkManager bridges the NIC (RHEL 9+, Fedora, Ubuntu desktop).

Two ways, one result (a bridge profile and a port profile; the NIC's old profile kept):

- **runtime** (default): ``nmcli connection add`` for both profiles, then ``nmcli connection
  up`` the port (NetworkManager activates the bridge with it). The IP settings are those of
  the NIC's *active* profile, read with ``nmcli -t -f ipv4...,ipv6... connection show``.
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

import posixpath
import uuid

from ..errors import PreflightRefused, ValidationFailed
from ..hostnet.names import validate_netns_name
from ..hostnet.plan import Plan, RemoveFile, RunCommand, Step
from ..hostnet.request import BridgeRequest, HostState
from ..hostnet.runner import Runner
from ..hostnet.state import LinkState
from .filebackend import (
    FileBackendBase,
    leased_v4,
    on_bus,
    read_text,
    stp_warnings,
    takeover_steps,
    write_step,
)
from .keyfile import Keyfile

__all__ = ["IP_PROPERTIES", "NmcliBackend", "parse_terse", "profile_uuid"]

KEYFILE_DIR = "/etc/NetworkManager/system-connections"
_NS = uuid.UUID("6c0b6d1e-4b7a-4f55-9a8e-6b766d6e6574")

#: The properties moved from the NIC's profile to the bridge's.
IP_PROPERTIES = (
    "ipv4.method",
    "ipv4.addresses",
    "ipv4.gateway",
    "ipv4.dns",
    "ipv4.dns-search",
    "ipv4.routes",
    "ipv4.route-metric",
    "ipv4.never-default",
    "ipv4.ignore-auto-dns",
    "ipv4.ignore-auto-routes",
    "ipv4.dhcp-client-id",
    "ipv4.may-fail",
    "ipv6.method",
    "ipv6.addresses",
    "ipv6.gateway",
    "ipv6.dns",
    "ipv6.dns-search",
    "ipv6.routes",
    "ipv6.route-metric",
    "ipv6.never-default",
    "ipv6.addr-gen-mode",
    "ipv6.ip6-privacy",
    "connection.zone",
)
# Values nmcli prints for "not set": copying them only makes the plan longer.
_UNSET = {"", "--"}
_DEFAULTS = {"-1", "no", "default", "unknown", "-1 (unknown)"}
_KEEP_DEFAULTS = {"ipv4.method", "ipv6.method"}
_DEFAULT_YES = {"ipv4.may-fail", "ipv6.may-fail"}


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


class NmcliBackend(FileBackendBase):
    """NetworkManager through nmcli (runtime, in ``netns``) or keyfiles (under ``root``)."""

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
    ) -> None:
        if netns is not None:
            validate_netns_name(netns)
        super().__init__(root=root, netns=netns, runner=runner)
        self.keyfiles = keyfiles or self.paths.root != "/"
        self.keyfile_dir = keyfile_dir
        self.bus_address = bus_address
        self.validate = validate

    def __repr__(self) -> str:
        how = f"keyfiles in {self.paths(self.keyfile_dir)!r}" if self.keyfiles else "runtime"
        return f"<NmcliBackend {how} runner={self._runner!r}>"

    def nmcli(self, *args: str) -> tuple[str, ...]:
        return on_bus(self.bus_address, "nmcli", *args)

    # -- reading (read-only queries through the runner) -----------------------------------
    def active_profile(self, device: str) -> tuple[str, str] | None:
        """(name, uuid) of the profile active on ``device``, if any."""
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
        fields = ",".join((*IP_PROPERTIES, "connection.autoconnect-priority"))
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
        if active:
            settings = self.profile_settings(active[1])
            priority = int(settings.pop("connection.autoconnect-priority", "0") or 0)
            ip = {k: v for k, v in settings.items() if _worth_copying(k, v)}
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
        steps += self._add_profiles(request, nic, ip, priority, source)
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
    ) -> list[Step]:
        """``nmcli connection add`` of the bridge profile (``ip`` settings, the NIC's MAC) and
        of the port profile, one ``autoconnect-priority`` above the old profile's."""
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
    def _nic_keyfile(self, current: HostState) -> tuple[str, Keyfile] | None:
        directory = self.paths(self.keyfile_dir)
        for name in current.list_dir(directory) or ():
            if not name.endswith(".nmconnection") or name.startswith("kvmnet-"):
                continue
            text = read_text(current, posixpath.join(directory, name))
            if text is None:
                continue
            kf = Keyfile.parse(text)
            if kf.get("connection", "type") not in ("ethernet", "802-3-ethernet"):
                continue
            if kf.get("connection", "master") or kf.get("connection", "controller"):
                continue
            mac = (kf.get("ethernet", "mac-address") or "").lower()
            if kf.get("connection", "interface-name") == current.nic.name or (
                mac and mac == current.nic.mac.lower()
            ):
                return name, kf
        return None

    def render_keyfiles(
        self, request: BridgeRequest, nic: LinkState, source: Keyfile | None
    ) -> tuple[str, str]:
        """(bridge keyfile, port keyfile) texts."""
        br_uuid, port_uuid = self._uuids(request)
        head = f"# Written by kvmnet: bridge {request.bridge} with port {nic.name}.\n"
        bridge = Keyfile()
        bridge.set("connection", "id", request.bridge)
        bridge.set("connection", "uuid", br_uuid)
        bridge.set("connection", "type", "bridge")
        bridge.set("connection", "interface-name", request.bridge)
        zone = source.get("connection", "zone") if source else None
        if zone:
            bridge.set_raw("connection", "zone", zone)
        bridge.set("bridge", "forward-delay", str(request.forward_delay))
        bridge.set("bridge", "mac-address", nic.mac.upper())
        bridge.set("bridge", "stp", "true" if request.stp else "false")
        if source is not None and ("ipv4" in source.sections or "ipv6" in source.sections):
            for section in ("ipv4", "ipv6"):
                for key, raw in source.sections.get(section, {}).items():
                    bridge.set_raw(section, key, raw)
        else:
            for key, value in _from_state(nic).items():
                section, prop = key.split(".", 1)
                bridge.set(section, prop if prop != "addresses" else "address1", value)
        priority = int((source.get("connection", "autoconnect-priority") if source else "0") or 0)
        port = Keyfile()
        port.set("connection", "id", f"{request.bridge}-port-{nic.name}")
        port.set("connection", "uuid", port_uuid)
        port.set("connection", "type", "ethernet")
        port.set("connection", "interface-name", nic.name)
        port.set("connection", "autoconnect-priority", str(priority + 1))
        port.set("connection", "master", request.bridge)
        port.set("connection", "slave-type", "bridge")
        port.sections["ethernet"] = {}
        return bridge.render(head), port.render(head)

    def validate_keyfile(self, text: str, name: str) -> None:
        """The real ``nmcli --offline connection modify`` must accept the keyfile."""
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
        found = self._nic_keyfile(current)
        warnings = stp_warnings(request)
        if found is None:
            warnings.append(
                f"no keyfile in {self.keyfile_dir} describes {nic.name}: "
                f"{br} takes its IP settings from the kernel"
            )
        bridge_text, port_text = self.render_keyfiles(request, nic, found[1] if found else None)
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
                + (f"; IP settings from {found[0]}" if found else ""),
            ),
            write_step(
                current,
                posixpath.join(directory, names[1]),
                port_text,
                mode=0o600,
                why="validated by nmcli --offline; the old profile stays",
            ),
        ]
        steps += takeover_steps(current, request)
        steps.append(RunCommand(self.nmcli("connection", "reload"), "read the new keyfiles"))
        steps += self._activation(request, current)
        hints: list[Step] = [RunCommand(self.nmcli("connection", "reload"))]
        if found is not None and found[1].get("connection", "uuid"):
            old = found[1].get("connection", "uuid") or ""
            hints.append(
                RunCommand(self.nmcli("connection", "up", "uuid", old), f"{nic.name}'s old profile")
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
        """Delete kvmnet's two profiles and bring the NIC's own profile back."""
        nic, br = current.nic.name, request.bridge
        br_uuid, port_uuid = self._uuids(request)
        steps: list[Step] = []
        if self.keyfiles:
            directory = self.paths(self.keyfile_dir)
            for name in (f"kvmnet-{br}.nmconnection", f"kvmnet-{br}-port-{nic}.nmconnection"):
                path = posixpath.join(directory, name)
                steps.append(RemoveFile(path, previous=read_text(current, path)))
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
