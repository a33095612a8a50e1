"""Guest and host bridge in one plan: the public path of `kvmnet.lan.onboard`.

Part of the public surface (docs/api.md): import from here. The module lives in the
layer folder its imports put it in (docs/architecture.md); this one re-exports its names.
"""

from __future__ import annotations

from .lan.onboard import (
    DEFAULT_ADDRESS_TIMEOUT,
    BridgeGuestOptions,
    BridgeOptions,
    LanPlan,
    LanResult,
    MoveOptions,
    NatGuestOptions,
    NatOptions,
    RunOptions,
    apply_lan_plan,
    bridge_guest,
    nat_guest,
    plan_bridge_guest,
    plan_nat_guest,
    wait_for_address,
)

__all__ = [
    "DEFAULT_ADDRESS_TIMEOUT",
    "BridgeGuestOptions",
    "BridgeOptions",
    "LanPlan",
    "LanResult",
    "MoveOptions",
    "NatGuestOptions",
    "NatOptions",
    "RunOptions",
    "apply_lan_plan",
    "bridge_guest",
    "nat_guest",
    "plan_bridge_guest",
    "plan_nat_guest",
    "wait_for_address",
]
