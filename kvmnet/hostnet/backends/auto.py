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
import os

from ...core import validate
from ..model.plan import Plan
from ..model.request import BridgeRequest, HostState
from ..runners.runner import LocalRunner, Runner, default_runner
from .base import Backend
from .detect import Detection, detect
from .filebackend import Rooted
from .registry import make_backend

__all__ = ["AutoBackend"]


class AutoBackend:
    """Detects the owning stack per NIC and delegates to its backend.

    ``root``, ``netns`` and ``runner`` are checked as every backend checks them, before
    anything is detected: the root is an existing directory when the runner acts on this
    machine (a missing or empty one is refused, never taken for ``/``), and a path that
    resolves outside it through a symlink is refused when read (as `FileBackendBase` does).

    Args:
        root: where the configuration files are read (``/``: this machine's).
        netns: read and act inside this network namespace.
        runner: read and act through this runner (default: for ``netns``).

    Raises:
        InvalidInput: ``root`` is relative, empty, missing or not a directory, or ``netns``
            is no namespace name (InvalidType for a wrong type, ``runner`` included).
    """

    name = "auto"

    def __init__(
        self,
        *,
        root: str | os.PathLike[str] = "/",
        netns: str | None = None,
        runner: Runner | None = None,
    ) -> None:
        # The checks of FileBackendBase and BackendBase, in their order: the backend chosen
        # later gets this root, and its own config dirs are checked when it is made.
        checked = validate.path(root, "root")
        local = runner is None or isinstance(runner, LocalRunner)
        if local:
            checked = validate.root_dir(checked)
        netns = validate.netns(netns)
        validate.runner(runner)
        self.paths = Rooted(checked, confine=local)
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
