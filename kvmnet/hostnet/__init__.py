"""Host side: NICs, bridges, plans, runners. Pure values live in ``model`` (state, request,
plan), the seam to a machine in ``runners``, one planner per stack in ``backends``; the
modules here read, check, apply and roll back (docs/architecture.md).

``kvmnet.hostnet.confirm()`` keeps a change applied with ``confirm_within=`` (see
`kvmnet.hostnet.deadman`).
"""

from __future__ import annotations

__all__ = ["confirm"]


def confirm(*, state_dir: str | None = None) -> list[str]:
    """Keep every change waiting for confirmation (one applied with ``confirm_within=``).

    Args:
        state_dir: where the dead-man timers keep their state (default: kvmnet's run
            directory); the same as given to ``apply``.

    Returns:
        The ids of the changes confirmed.

    Raises:
        ConfirmationError: no change waits for confirmation.
        InvalidInput: a ``state_dir`` with NUL bytes, bytes, or an empty path.
    """
    from ..core.validate import optional_path

    optional_path(state_dir, "state_dir")
    from .deadman import confirm as _confirm

    return _confirm(state_dir=state_dir)
