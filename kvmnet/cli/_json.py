"""What ``--json`` prints for the library's results: plain dicts, built at the CLI boundary.

The shapes are documented in docs/cli.md ("JSON output"); every command's ``--json`` goes
through here, so a Change reads the same from ``bridge``, ``add-nic`` or ``bridge-all``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..core.change import Change
    from ..core.domainxml import GuestInterface
    from ..hostnet.apply import ApplyResult
    from ..hostnet.model.plan import Plan
    from ..lan.lanplan import LanResult

__all__ = ["apply_result_json", "change_json", "interface_json", "lan_result_json", "plan_json"]

Json = dict[str, object]


def interface_json(iface: GuestInterface) -> Json:
    """One guest interface, as ``kvmnet domains --json`` lists it.

    Args:
        iface: the interface.

    Returns:
        ``{"index", "mac", "type", "source", "model", "target", "mode"}``.
    """
    return {
        "index": iface.index,
        "mac": iface.mac,
        "type": iface.type,
        "source": iface.source,
        "model": iface.model,
        "target": iface.target,
        "mode": iface.mode.value,
    }


def change_json(change: Change) -> Json:
    """A domain edit: what, where, applied how, and the XML diff.

    Args:
        change: the edit (applied or a dry run).

    Returns:
        ``{"domain", "action", "changed", "dry_run", "applied_live", "applied_config",
        "interface", "notes", "diff"}``.
    """
    return {
        "domain": change.domain,
        "action": change.action,
        "changed": change.changed,
        "dry_run": change.dry_run,
        "applied_live": change.applied_live,
        "applied_config": change.applied_config,
        "interface": interface_json(change.interface) if change.interface is not None else None,
        "notes": list(change.notes),
        "diff": change.diff(),
    }


def plan_json(plan: Plan) -> Json:
    """A host-bridge plan: every step and check, described as ``str(plan)`` does.

    Args:
        plan: the plan.

    Returns:
        ``{"backend", "action", "nic", "bridge", "dry_run", "notes", "warnings", "steps":
        [{"kind", "description"}], "checks", "files", "commands",
        "requires_confirmation"}``.
    """
    from ..hostnet.model.plan import step_kind

    return {
        "backend": plan.backend,
        "action": plan.action,
        "nic": plan.nic,
        "bridge": plan.bridge,
        "dry_run": plan.dry_run,
        "notes": list(plan.notes),
        "warnings": list(plan.warnings),
        "steps": [{"kind": step_kind(s), "description": s.describe()} for s in plan.steps],
        "checks": [c.describe() for c in plan.checks],
        "files": list(plan.files),
        "commands": [list(argv) for argv in plan.commands],
        "requires_confirmation": plan.requires_confirmation,
    }


def apply_result_json(plan: Plan, result: ApplyResult | None) -> Json:
    """``host-bridge`` / ``host-release``: the plan, and what applying it did.

    Args:
        plan: the plan shown (a dry run's, or the one applied).
        result: None for ``--dry-run``.

    Returns:
        ``{"plan", "applied", "verified", "attempts", "pending_confirmation"}``.
    """
    return {
        "plan": plan_json(plan),
        "applied": result is not None,
        "verified": result.verified if result is not None else False,
        "attempts": result.attempts if result is not None else 0,
        "pending_confirmation": result.pending_confirmation if result is not None else None,
    }


def lan_result_json(result: LanResult) -> Json:
    """``bridge --create-from`` / ``nat --release``: the host and guest steps in one.

    Args:
        result: what the call did (``applied`` False: a dry run).

    Returns:
        ``{"action", "domain", "bridge", "network", "applied", "host_plan", "change",
        "addresses": [{"mac", "address", "prefix", "source"}], "pending_confirmation",
        "checks", "notes"}``.
    """
    p = result.plan
    change = result.change if result.change is not None else p.change
    return {
        "action": p.action,
        "domain": p.domain,
        "bridge": p.bridge,
        "network": p.network,
        "applied": result.applied,
        "host_plan": plan_json(p.host_plan) if p.host_plan is not None else None,
        "change": change_json(change),
        "addresses": [
            {"mac": a.mac, "address": a.address, "prefix": a.prefix, "source": a.source}
            for a in result.addresses
        ],
        "pending_confirmation": result.pending_confirmation,
        "checks": list(p.checks),
        "notes": [*p.notes, *result.notes],
    }
