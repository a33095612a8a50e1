"""Host side: NICs, bridges, plans, runners. Pure value objects live in ``state`` and ``plan``.

``kvmnet.hostnet.confirm()`` keeps a change applied with ``confirm_within=`` (see
`kvmnet.hostnet.deadman`).
"""

from __future__ import annotations

__all__ = ["confirm"]


def confirm(*, state_dir: str | None = None) -> list[str]:
    """Keep every change waiting for confirmation; ConfirmationError if none waits.

    ``state_dir`` (str or path-like) is checked first: InvalidInput for NUL, bytes...
    """
    from ..validate import optional_path

    optional_path(state_dir, "state_dir")
    from .deadman import confirm as _confirm

    return _confirm(state_dir=state_dir)
