"""Host-side work bound to a machine: its runner, its backend, and the ``other-machine`` check.

A `Host` names a machine through its libvirt URI
(`machine_of`); everything it does to that machine's network
goes through the runner made here: `LocalRunner` (or a
namespace runner) for this machine, `SshRunner` for a
``qemu+ssh://`` one. A backend whose runner acts on another machine than the Host's is
refused before anything is read or changed::

    check_same_machine(machine_of(host.uri), backend.runner)   # PreflightRefused "other-machine"

The override is ``force=("other-machine",)`` (e.g. the names differ but are one machine).
"""

from __future__ import annotations

from collections.abc import Collection
from typing import TYPE_CHECKING

from .. import _log
from ..errors import PreflightRefused
from .runners.machine import Machine
from .runners.runner import Runner, default_runner
from .runners.sshrunner import runner_machine

if TYPE_CHECKING:
    from .backends.base import Backend

__all__ = [
    "OTHER_MACHINE",
    "backend_on",
    "check_same_machine",
    "runner_for",
    "runner_machine",
]

log = _log.get(__name__)

#: The ``force=`` key that lets a backend act on another machine than the Host's.
OTHER_MACHINE = "other-machine"


def runner_for(machine: Machine, *, netns: str | None = None) -> Runner:
    """A new runner acting on ``machine`` (inside ``netns`` there, when given).

    Args:
        machine: this machine (`LOCAL`) or an SSH one.
        netns: a network namespace on that machine to act inside.

    Returns:
        A local or namespace runner for this machine, an `SshRunner` for another.
    """
    if machine.is_local:
        return default_runner(netns)
    from .runners.sshrunner import SshRunner

    return SshRunner(machine, netns=netns)


def check_same_machine(
    machine: Machine, runner: Runner, *, force: Collection[str] = (), what: str = "backend"
) -> None:
    """Refuse a runner (a backend's) that acts on another machine than ``machine``.

    Args:
        machine: the machine of the Host (of its libvirt URI).
        runner: the runner that would act on the host side.
        force: contains ``"other-machine"`` to allow it anyway.
        what: how the message names the thing refused.

    Raises:
        PreflightRefused: check ``other-machine``, naming both machines and the fix.
    """
    theirs = runner_machine(runner)
    if theirs is None or theirs.same_as(machine) or OTHER_MACHINE in force:
        return
    where = f"the libvirt URI {machine.uri!r}" if machine.uri else "the Host"
    raise PreflightRefused(
        f"the {what} acts on {theirs} ({runner!r}) but {where} names {machine}: it would "
        f"inspect and change the wrong machine's network. Use host.backend(...) (CLI: -c URI "
        f"with the hypervisor's URI), or override with force=('{OTHER_MACHINE}',) if both "
        "name the same machine",
        check=OTHER_MACHINE,
    )


def backend_on(
    runner: Runner,
    kind: str = "auto",
    *,
    root: str | None = None,
    netns: str | None = None,
) -> Backend:
    """A backend of ``kind`` that acts through ``runner`` (its machine, its namespace).

    Args:
        runner: where the backend reads and acts (see `runner_for`).
        kind: a name `kvmnet.backends.create_backend` takes, or ``"auto"``.
        root: where a file backend reads and writes on that machine (default /).
        netns: the namespace ``runner`` acts in, told to backends that record it.

    Returns:
        The backend, bound to ``runner``.

    Raises:
        InvalidInput: an unknown kind, or an option the backend does not take.
    """
    from .backends import create_backend

    del netns  # the runner already acts inside it
    return create_backend(kind, root=root, runner=runner)
