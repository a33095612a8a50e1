"""``backend="auto"``: the backend of whatever stack owns the NIC, chosen when planning.

The NIC is only known when a plan is asked for, so `AutoBackend` decides then
(`detect`), plans with that backend and puts the choice and
its evidence in the plan's ``notes`` (``str(plan)`` shows them)::

    backend = create_backend("auto")               # or host.backend("auto")
    plan = kvmnet.Bridge("br0", backend=backend).enslave(kvmnet.HostNic("eno1", backend=backend),
                                                          dry_run=True)
    print(plan.backend, plan.notes)                # "ifupdown", ("backend auto -> ifupdown: ...",)
"""

from __future__ import annotations

import dataclasses

from ..model.plan import Plan
from ..model.request import BridgeRequest, HostState
from ..runners.runner import Runner, default_runner
from .base import Backend
from .detect import Detection, detect
from .filebackend import Rooted
from .registry import make_backend

__all__ = ["AutoBackend"]


class AutoBackend:
    """Detects the owning stack per NIC and delegates to its backend.

    Args:
        root: where the configuration files are read (``/``: this machine's).
        netns: read and act inside this network namespace.
        runner: read and act through this runner (default: for ``netns``).

    Raises:
        InvalidInput: ``root`` is not an absolute path.
    """

    name = "auto"

    def __init__(
        self, *, root: str = "/", netns: str | None = None, runner: Runner | None = None
    ) -> None:
        self.paths = Rooted(root)
        self._netns = netns
        self._runner: Runner = runner if runner is not None else default_runner(netns)
        self.chosen: dict[str, Backend] = {}

    @property
    def runner(self) -> Runner:
        return self._runner

    @property
    def root(self) -> str:
        return self.paths.root

    def __repr__(self) -> str:
        return f"<AutoBackend root={self.root!r} runner={self._runner!r}>"

    def detect(self, nic: str, current: HostState) -> Detection:
        """Which stack owns ``nic`` (see `detect`)."""
        return detect(nic, current, rooted=self.paths)

    def backend_for(self, nic: str, current: HostState) -> tuple[Backend, Detection]:
        """The backend that owns ``nic``, made for this root and runner, and why."""
        found = self.detect(nic, current)
        backend = make_backend(found.kind, root=self.root if found.kind != "iproute2" else
                                 None, runner=self._runner)
        self.chosen[nic] = backend
        return backend, found

    def plan_enslave(self, request: BridgeRequest, current: HostState) -> Plan:
        backend, found = self.backend_for(request.nic, current)
        return _noted(backend.plan_enslave(request, current), found)

    def plan_release(self, request: BridgeRequest, current: HostState) -> Plan:
        backend, found = self.backend_for(request.nic, current)
        return _noted(backend.plan_release(request, current), found)


def _noted(plan: Plan, found: Detection) -> Plan:
    return dataclasses.replace(plan, notes=(*plan.notes, found.describe()))
