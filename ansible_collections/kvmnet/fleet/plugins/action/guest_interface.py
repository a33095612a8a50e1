# Copyright (c) 2026 the kvmnet developers
# MIT License (see LICENSE at the collection's root)
"""Action plugin of kvmnet.fleet.guest_interface: names the hypervisor in the MAC seed.

It runs on the controller, where ``inventory_hostname`` is known, and passes it to the
module as ``mac_scope`` unless the task gives one: with it a derived MAC is unique across
every hypervisor of the play, with no coordination between the forks.
"""

from __future__ import annotations

from typing import Any

from ansible.plugins.action import ActionBase


class ActionModule(ActionBase):  # type: ignore[misc]
    """Fill ``mac_scope`` in, then run the module on the target."""

    def run(self, tmp: Any = None, task_vars: dict[str, Any] | None = None) -> dict[str, Any]:
        task_vars = task_vars or {}
        result: dict[str, Any] = super().run(tmp, task_vars)
        args = dict(self._task.args)
        if not args.get("mac_scope"):
            args["mac_scope"] = task_vars.get("inventory_hostname")
        result.update(
            self._execute_module(
                module_name="kvmnet.fleet.guest_interface", module_args=args, task_vars=task_vars
            )
        )
        return result
