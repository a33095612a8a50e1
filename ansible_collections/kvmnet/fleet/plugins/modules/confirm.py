#!/usr/bin/python
# Copyright (c) 2026 the kvmnet developers
# MIT License (see LICENSE at the collection's root)
"""kvmnet.fleet.confirm: keep a host-bridge change the dead-man timer would roll back."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: confirm
short_description: Confirm host network changes waiting on kvmnet's dead-man timer
version_added: "0.1.0"
description:
  - After M(kvmnet.fleet.host_bridge) with O(kvmnet.fleet.host_bridge#module:confirm_within),
    the change rolls itself back unless confirmed in time. Run this over a B(new)
    connection (after C(ansible.builtin.meta) V(reset_connection) and
    C(ansible.builtin.wait_for_connection)) to prove the hypervisor is still reachable.
  - Fails with kvmnet's message when nothing waits (never armed, confirmed already, or
    rolled back because confirmation came too late).
requirements:
  - kvmnet importable by the target's C(ansible_python_interpreter)
options:
  state_dir:
    description: Where the pending changes are (default C($KVMNET_STATE_DIR) or C(/run/kvmnet)).
    type: path
author:
  - kvmnet developers
"""

EXAMPLES = r"""
- name: Keep the bridge
  kvmnet.fleet.confirm:
"""

RETURN = r"""
confirmed:
  description: The ids of the changes confirmed.
  returned: success
  type: list
  elements: str
"""

from typing import Any

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.kvmnet.fleet.plugins.module_utils.kvmnet_common import (
    kvmnet_failures,
    require_kvmnet,
)

# The options DOCUMENTATION describes (tests/unit/test_ansible_collection.py compares them).
ARGUMENT_SPEC: dict[str, Any] = {"state_dir": {"type": "path"}}


def main() -> None:
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC)
    require_kvmnet(module.fail_json)
    from kvmnet.hostnet.deadman import confirm

    with kvmnet_failures(module.fail_json):
        done = confirm(state_dir=module.params["state_dir"])
        module.exit_json(changed=True, confirmed=done)


if __name__ == "__main__":
    main()
