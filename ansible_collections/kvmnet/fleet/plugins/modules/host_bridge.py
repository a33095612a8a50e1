#!/usr/bin/python
# Copyright (c) 2026 the kvmnet developers
# MIT License (see LICENSE at the collection's root)
"""kvmnet.fleet.host_bridge: a hypervisor's NIC into a bridge (or back), with a dead-man."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: host_bridge
short_description: Bridge a hypervisor's NIC (addresses and routes move to the bridge)
version_added: "0.1.0"
description:
  - Thin over kvmnet's C(Bridge.enslave()) / C(Bridge.release()) - plan, apply, verify and
    roll back on failure, through the backend that owns the NIC (C(auto)) or the one named.
  - Check mode with C(--diff) shows the plan - every file it writes and command it runs.
  - B(The dangerous case) - when the Ansible connection rides the NIC, kvmnet refuses to
    apply without O(confirm_within). Apply with it, reconnect
    (C(ansible.builtin.meta) V(reset_connection), C(ansible.builtin.wait_for_connection)),
    then run M(kvmnet.fleet.confirm); a
    change that cut the hypervisor off rolls itself back when the timer runs out. The role
    C(kvmnet.fleet.safe_host_bridge) does exactly that.
requirements:
  - kvmnet importable by the target's C(ansible_python_interpreter)
options:
  nic:
    description: The physical NIC, e.g. C(enp1s0).
    type: str
    required: true
  bridge:
    description: The bridge, e.g. C(br0); created when missing.
    type: str
    required: true
  state:
    description: V(present) - O(nic) is a port of O(bridge); V(absent) - it is not (the
      bridge's addresses go back to the NIC, the bridge goes when no port is left).
    type: str
    choices: [present, absent]
    default: present
  backend:
    description: Which network stack writes the change; V(auto) detects the one owning O(nic).
    type: str
    choices: [auto, iproute2, ifcfg, ifupdown, nmcli, netplan, networkd]
    default: auto
  root:
    description: Where a file backend reads and writes (default C(/)).
    type: path
  confirm_within:
    description: Seconds after which the change rolls back unless M(kvmnet.fleet.confirm)
      runs; required by kvmnet when the SSH session rides O(nic).
    type: float
  force:
    description: kvmnet preflight refusals to override, by name (see kvmnet's docs).
    type: list
    elements: str
    default: []
author:
  - kvmnet developers
"""

EXAMPLES = r"""
- name: Show what would change
  kvmnet.fleet.host_bridge:
    nic: enp1s0
    bridge: br0
  check_mode: true
  diff: true

- name: The safe pattern, as a role
  ansible.builtin.include_role:
    name: kvmnet.fleet.safe_host_bridge
  vars:
    safe_host_bridge_nic: enp1s0
    safe_host_bridge_bridge: br0
"""

RETURN = r"""
plan:
  description: The plan, as kvmnet prints it.
  returned: success
  type: str
backend:
  description: The backend that planned it (what C(auto) chose).
  returned: success
  type: str
commands:
  description: Every command the plan runs, in order.
  returned: success
  type: list
  elements: list
files:
  description: Every file the plan writes or removes.
  returned: success
  type: list
  elements: str
error:
  description: Class name of the kvmnet error behind a failure (e.g. V(RolledBack)).
  returned: failure
  type: str
"""

from typing import Any

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.kvmnet.fleet.plugins.module_utils.kvmnet_common import (
    kvmnet_failures,
    require_kvmnet,
)

# The options DOCUMENTATION describes (tests/unit/test_ansible_collection.py compares them).
ARGUMENT_SPEC: dict[str, Any] = {
    "nic": {"type": "str", "required": True},
    "bridge": {"type": "str", "required": True},
    "state": {"type": "str", "default": "present", "choices": ["present", "absent"]},
    "backend": {
        "type": "str",
        "default": "auto",
        "choices": [
            "auto",
            "iproute2",
            "ifcfg",
            "ifupdown",
            "nmcli",
            "netplan",
            "networkd",
        ],
    },
    "root": {"type": "path"},
    "confirm_within": {"type": "float"},
    "force": {"type": "list", "elements": "str", "default": []},
}


def run(module: AnsibleModule) -> dict[str, Any]:
    """Plan (and unless check mode, apply) the change; the result dict for exit_json."""
    from kvmnet import Bridge, HostNic
    from kvmnet.backends import create_backend

    p = module.params
    backend = create_backend(p["backend"], root=p["root"])
    bridge = Bridge(p["bridge"], backend=backend)
    nic = HostNic(p["nic"], backend=backend)
    act = bridge.enslave if p["state"] == "present" else bridge.release
    if p["state"] == "absent" and nic.master != p["bridge"]:
        return {"changed": False, "plan": f"{p['nic']} is not a port of {p['bridge']}",
                "backend": backend.name, "commands": [], "files": []}  # fmt: skip
    plan = act(
        nic,
        dry_run=module.check_mode,
        confirm_within=p["confirm_within"],
        force=tuple(p["force"]),
    )
    text = str(plan)
    result: dict[str, Any] = {
        "changed": bool(plan.steps),
        "plan": text,
        "backend": plan.backend,
        "commands": [list(argv) for argv in plan.commands],
        "files": list(plan.files),
        "warnings_kvmnet": list(plan.warnings),
    }
    if module._diff and plan.steps:
        result["diff"] = {"prepared": text}
    return result


def main() -> None:
    module = AnsibleModule(
        argument_spec=ARGUMENT_SPEC,
        supports_check_mode=True,
    )
    require_kvmnet(module.fail_json)
    with kvmnet_failures(module.fail_json, nic=module.params["nic"]):
        module.exit_json(**run(module))


if __name__ == "__main__":
    main()
