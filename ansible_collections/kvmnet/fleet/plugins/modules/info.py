#!/usr/bin/python
# Copyright (c) 2026 the kvmnet developers
# MIT License (see LICENSE at the collection's root)
"""kvmnet.fleet.info: a hypervisor's guests, their NICs and modes, and its bridges."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: info
short_description: Guests, their interfaces and modes, and the host's bridges as facts
version_added: "0.1.0"
description:
  - Reads kvmnet's C(Host.topology()) on the hypervisor and returns it as
    C(ansible_facts.kvmnet) - guests with each NIC's MAC, type, source and mode
    (nat, bridged, ...), the host's bridges, NICs and libvirt networks.
  - Changes nothing; supports check mode.
requirements:
  - kvmnet and libvirt-python importable by the target's C(ansible_python_interpreter)
options:
  uri:
    description: libvirt URI of the hypervisor's libvirtd, as seen from the target.
    type: str
    default: qemu:///system
  host_links:
    description:
      - Also read the target's own links and routes (C(ip -j)), so that bridges no guest
        or network names (and the physical NICs) show up.
    type: bool
    default: true
author:
  - kvmnet developers
"""

EXAMPLES = r"""
- name: What runs where
  kvmnet.fleet.info:
- name: Guests still on NAT
  ansible.builtin.debug:
    msg: "{{ ansible_facts.kvmnet.guests | selectattr('interfaces', 'search', 'nat') }}"
"""

RETURN = r"""
ansible_facts:
  description: The topology under the key C(kvmnet).
  returned: success
  type: dict
  contains:
    kvmnet:
      description: C(uri), C(guests) (name, running, interfaces with mac/type/source/mode),
        C(bridges), C(nics), C(networks).
      type: dict
      returned: success
"""

from typing import Any

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.kvmnet.fleet.plugins.module_utils.kvmnet_common import (
    kvmnet_failures,
    require_kvmnet,
)

# The options DOCUMENTATION describes (tests/unit/test_ansible_collection.py compares them).
ARGUMENT_SPEC: dict[str, Any] = {
    "uri": {"type": "str", "default": "qemu:///system"},
    "host_links": {"type": "bool", "default": True},
}


def main() -> None:
    module = AnsibleModule(
        argument_spec=ARGUMENT_SPEC,
        supports_check_mode=True,
    )
    require_kvmnet(module.fail_json)
    import kvmnet
    from kvmnet.hostnet.runners.runner import LocalRunner

    with kvmnet_failures(module.fail_json):
        with kvmnet.connect(module.params["uri"]) as host:
            runner = LocalRunner() if module.params["host_links"] else None
            facts: dict[str, Any] = host.topology(runner=runner).to_dict()
        module.exit_json(changed=False, ansible_facts={"kvmnet": facts})


if __name__ == "__main__":
    main()
