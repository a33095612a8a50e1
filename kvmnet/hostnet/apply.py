"""Placeholder: the shared apply mechanism lands next (snapshot -> steps -> verify -> rollback)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .plan import Plan

__all__ = ["ApplyResult", "apply_plan"]


@dataclass(frozen=True)
class ApplyResult:
    """What applying a plan did."""

    plan: Plan
    verified: bool
    attempts: int = 0
    pending_confirmation: str | None = None


def apply_plan(
    plan: Plan,
    *,
    verify: bool = True,
    confirm_within: float | None = None,
    retries: int = 10,
    retry_interval: float = 0.5,
    rollback_on_failure: bool = True,
    state_dir: str | None = None,
) -> ApplyResult:
    raise NotImplementedError("apply lands in the next commit")
