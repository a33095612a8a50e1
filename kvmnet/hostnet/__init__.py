"""Host side: NICs, bridges, plans, runners. Pure value objects live in ``state`` and ``plan``.

``kvmnet.hostnet.confirm()`` keeps a change applied with ``confirm_within=`` (see
:mod:`kvmnet.hostnet.deadman`).
"""

from __future__ import annotations

__all__ = ["confirm"]


def confirm(*, state_dir: str | None = None) -> list[str]:
    """Keep every change waiting for confirmation; ConfirmationError if none waits."""
    from .deadman import confirm as _confirm

    return _confirm(state_dir=state_dir)
