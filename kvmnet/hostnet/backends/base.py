"""The backend seam: one small Protocol every network stack implements.

A backend is a PURE planner: given what is wanted (`BridgeRequest`) and what is there
(`HostState`, read by shared code in `kvmnet.hostnet.inspect` through the runner),
it returns a `Plan`. It never changes the host. It may *read*
through ``current.read_file``/``current.list_dir`` (files under its ``root``) and run
read-only queries through ``self.runner`` (e.g. ``nmcli -t connection show``), so a
`RecordingRunner` with canned replies can drive it in tests.

Executing the plan is NOT the backend's job: ``plan.apply()`` runs the one shared mechanism
(`kvmnet.hostnet.apply`): snapshot runtime state and every file in ``plan.files`` ->
steps -> verify ``plan.checks`` with retries -> on failure restore the files byte for byte,
run ``plan.rollback_hints``, restore links/addresses/routes (unless
``plan.restore_runtime`` is False), raise RolledBack.

Constructors (contract): file backends take ``root="/"``, runtime ones ``netns=None``; all
take ``runner=None`` (default: `kvmnet.hostnet.runners.runner.default_runner(netns)`)::

    backend = Iproute2Backend(netns="lab-host")
    plan = backend.plan_enslave(BridgeRequest("eth0", "br0"), inspect_host(backend.runner, ...))

The five backends derive from `BackendBase` (file backends from `FileBackendBase`), whose
``_plan`` assembles the plan around the backend's steps with ``runner=self.runner`` and
``applier=apply_plan`` (so ``plan.apply()`` knows what executes it) and the shared checks
(`standard_checks` or `release_checks`); shared code sets ``dry_run``
(``dataclasses.replace``). Preflight refusals are shared too (`kvmnet.hostnet.preflight`); a
backend only adds ``warnings`` to its plan.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from typing import Literal, Protocol, runtime_checkable

from ...core import validate
from ..apply import apply_plan
from ..model.plan import Check, Plan, Step, StopProcess
from ..model.request import BridgeRequest, HostState
from ..model.state import IpAddress
from ..runners.runner import Runner, default_runner

__all__ = [
    "Backend",
    "BackendBase",
    "BridgeRequest",
    "HostState",
    "release_checks",
    "stale_addresses",
    "standard_checks",
    "stop_dhcp_clients",
    "stp_warnings",
]


@runtime_checkable
class Backend(Protocol):
    """Turns (request, current host state) into a Plan. See the module docstring."""

    @property
    def name(self) -> str:
        """The backend's name, as ``--backend`` and `create_backend` take it."""
        ...

    @property
    def runner(self) -> Runner:
        """The runner the backend reads through, and its plans run on."""
        ...

    def plan_enslave(self, request: BridgeRequest, current: HostState) -> Plan:
        """Plan bridging ``request.nic`` into ``request.bridge``; change nothing.

        Args:
            request: what is wanted: the NIC, the bridge and the options.
            current: the host as it is now: links, routes, DHCP clients, and files read
                under the backend's ``root``.

        Returns:
            The `Plan` (``plan.apply()`` runs it).
        """
        ...

    def plan_release(self, request: BridgeRequest, current: HostState) -> Plan:
        """Plan the way back: the bridge's settings onto ``request.nic``; change nothing.

        Args:
            request: what is wanted: the NIC, the bridge and the options.
            current: the host as it is now.

        Returns:
            The `Plan` (``plan.apply()`` runs it).
        """
        ...


class BackendBase:
    """What the backends share: the runner they plan with and how a plan is assembled.

    Subclasses set ``name``.

    Args:
        netns: the network namespace to read and act in (None: this process's own).
        runner: the runner to read and act through (default: one for ``netns``).

    Raises:
        InvalidInput: a bad namespace name or runner (InvalidType for a wrong type).
    """

    name: str

    def __init__(self, *, netns: str | None = None, runner: Runner | None = None) -> None:
        # Checked here, before any runner exists: InvalidInput/InvalidType for a bad one.
        netns = validate.netns(netns)
        validate.runner(runner)
        self._runner: Runner = runner if runner is not None else default_runner(netns)

    @property
    def runner(self) -> Runner:
        """The runner this backend reads through, and its plans run on."""
        return self._runner

    def _plan(
        self,
        action: Literal["enslave", "release"],
        request: BridgeRequest,
        current: HostState,
        steps: Iterable[Step],
        *,
        warnings: Iterable[str] = (),
        rollback_hints: Iterable[Step] = (),
        restore_runtime: bool = True,
    ) -> Plan:
        """A plan run by this backend's runner, verified by the checks every backend shares."""
        checks = (standard_checks if action == "enslave" else release_checks)(request, current)
        return Plan(
            backend=self.name,
            action=action,
            nic=current.nic.name,
            bridge=request.bridge,
            steps=tuple(steps),
            checks=checks,
            rollback_hints=tuple(rollback_hints),
            warnings=tuple(warnings),
            restore_runtime=restore_runtime,
            runner=self._runner,
            applier=apply_plan,
        )


def stale_addresses(current: HostState) -> tuple[IpAddress, ...]:
    """Global addresses on a pre-existing bridge that the NIC does not carry (192.168.0.1/24
    left over from an earlier attempt): they would stay on the bridge next to the moved ones."""
    if current.bridge is None:
        return ()
    mine = {a.cidr for a in current.nic.global_addresses}
    return tuple(a for a in current.bridge.global_addresses if a.cidr not in mine)


def stop_dhcp_clients(
    current: HostState, links: Collection[str], reason: str, *, kill_dhcpcd: bool = False
) -> list[Step]:
    """Stop the DHCP clients holding one of ``links`` (rollback restarts them); the step says
    "PROGRAM holds LINK" + ``reason``. ``kill_dhcpcd``: SIGKILL dhcpcd, which deconfigures
    its link on SIGTERM (unless --persistent), so the lease stays where it is."""
    return [
        StopProcess(
            c.pid,
            c.argv,
            "KILL" if kill_dhcpcd and c.program.startswith("dhcpcd") else "TERM",
            f"{c.program} holds {c.link}{reason}",
        )
        for c in current.dhcp_clients
        if c.link in links
    ]


def stp_warnings(request: BridgeRequest) -> list[str]:
    """The outage STP means, when the request turns it on (every backend warns the same)."""
    if not request.stp:
        return []
    return [
        f"STP on: {request.bridge} forwards nothing for 2 x forward delay after a port joins "
        "(about 30 s with the default 15 s; the kernel clamps the delay to at least 2 s with "
        "STP on), so the host is unreachable that long"
    ]


def _default_gateway(current: HostState) -> str | None:
    """The IPv4 default gateway through the NIC, else through a pre-existing bridge."""
    devs = [current.nic.name] + ([current.bridge.name] if current.bridge is not None else [])
    for dev in devs:
        for route in current.default_routes:
            if route.family == 4 and route.gateway and route.dev == dev:
                return route.gateway
    return None


def standard_checks(request: BridgeRequest, current: HostState) -> tuple[Check, ...]:
    """What every backend verifies after bridging: the bridge is up with the NIC's MAC and
    addresses, the NIC is its port, the default route (if the NIC had one) goes through the
    bridge and its gateway answers; a stale address on a pre-existing bridge is gone."""
    br, nic = request.bridge, request.nic
    checks = [
        Check("link-up", br, description=f"{br} exists and is up"),
        Check("has-mac", br, current.nic.mac, f"{br} has {nic}'s MAC {current.nic.mac}"),
        Check("port-of", nic, br, f"{nic} is a port of {br}"),
    ]
    for addr in current.nic.global_addresses:
        checks.append(Check("has-address", br, addr.cidr, f"{br} has {addr.cidr}"))
        checks.append(Check("lacks-address", nic, addr.cidr, f"{nic} no longer has {addr.cidr}"))
    for addr in stale_addresses(current):
        checks.append(Check("lacks-address", br, addr.cidr, f"stale {addr.cidr} is gone from {br}"))
    gateway = _default_gateway(current)
    if any(r.dev == nic for r in current.default_routes):
        checks.append(
            Check("default-route-via", br, gateway, f"the default route goes through {br}")
        )
        if gateway:
            checks.append(
                Check("gateway-answers", br, gateway, f"gateway {gateway} answers through {br}")
            )
    return tuple(checks)


def release_checks(request: BridgeRequest, current: HostState) -> tuple[Check, ...]:
    """What every backend verifies after releasing: the NIC is nobody's port and carries the
    bridge's addresses, the default route goes through it again, the gateway answers."""
    br, nic = request.bridge, request.nic
    checks = [
        Check("not-port", nic, description=f"{nic} is no longer a port"),
        Check("link-up", nic, description=f"{nic} is up"),
    ]
    source = current.bridge
    for addr in source.global_addresses if source else ():
        checks.append(Check("has-address", nic, addr.cidr, f"{nic} has {addr.cidr}"))
    gateway = None
    for route in current.default_routes:
        if source is not None and route.dev == source.name and route.gateway:
            gateway = route.gateway
    if gateway:
        checks.append(Check("default-route-via", nic, gateway, f"default route via {nic}"))
        checks.append(Check("gateway-answers", nic, gateway, f"gateway {gateway} answers"))
    if source is not None and set(source.ports) <= {nic}:
        checks.append(Check("link-absent", br, description=f"{br} is removed (no ports left)"))
    return tuple(checks)
