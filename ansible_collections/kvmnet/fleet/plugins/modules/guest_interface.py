#!/usr/bin/python
# Copyright (c) 2026 the kvmnet developers
# MIT License (see LICENSE at the collection's root)
"""kvmnet.fleet.guest_interface: one guest NIC NAT <-> bridged, added or removed."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: guest_interface
short_description: Move a KVM guest's NIC between NAT and a bridge, add or remove one
version_added: "0.1.0"
description:
  - Thin over the kvmnet library (C(Domain.use_bridge), C(use_nat), C(add_interface),
    C(remove_interface)); runs on the hypervisor and talks to its libvirtd.
  - The persistent definition always changes; the running guest too when it runs (see
    O(live)).
  - Idempotent; supports check mode, and C(--diff) shows the domain XML before and after.
  - Failures carry kvmnet's own one-line message and the error's class name in RV(error).
requirements:
  - kvmnet and libvirt-python importable by the target's C(ansible_python_interpreter)
options:
  domain:
    description:
      - The libvirt domain (guest) name. One of O(domain) and O(domains) is required.
    type: str
  domains:
    description:
      - Several guests in one task, for V(bridged) and V(nat) - each guest's first NIC
        (O(iface) does not go with it). One module run and one libvirt connection instead
        of one per guest - use it rather than a loop over many guests.
      - Stops at the first guest that fails; the failure message names the guests already
        switched (they stay switched, and a rerun skips them).
    type: list
    elements: str
  state:
    description:
      - V(bridged) puts the selected NIC on host bridge O(bridge).
      - V(nat) puts the selected NIC on libvirt network O(network).
      - V(present) makes sure a NIC with MAC O(mac) (or the MAC derived from O(mac_key))
        is on O(bridge) or O(network), adding it if missing.
      - V(absent) removes the NIC O(iface) or O(mac) selects; nothing if there is none.
    type: str
    choices: [bridged, nat, present, absent]
    default: bridged
  iface:
    description:
      - Which NIC for V(bridged), V(nat) and V(absent) - a MAC or an index into the
        domain's interfaces (XML order, from 0). Default the first NIC (not for V(absent)).
    type: str
  bridge:
    description: Host bridge for V(bridged), or for V(present) instead of O(network).
    type: str
  network:
    description: libvirt network for V(nat) (default V(default)) or V(present).
    type: str
  mac:
    description:
      - The NIC's MAC for V(present) (and a selector for V(absent)).
      - Without it, V(present) derives the MAC from O(mac_key) (see the collection's README
        for the scheme and its collision odds). The target always checks that the MAC is
        unused on its own host (kvmnet's C(MacInUse)).
    type: str
  mac_key:
    description:
      - For V(present) without O(mac) - what names this NIC within the guest; the MAC is
        a 46-bit hash of C(<mac_scope>/<domain>/<mac_key>) in the locally administered
        space. Default the bridge or network name.
    type: str
  mac_scope:
    description:
      - The hypervisor's name in the MAC seed; the action plugin sets it to
        C(inventory_hostname), which is unique across the play.
    type: str
  live:
    description:
      - Unset - the running guest changes too when it runs; V(false) - next boot only;
        V(true) - fail unless the running guest can change too.
    type: bool
  uri:
    description: libvirt URI of the hypervisor's libvirtd, as seen from the target.
    type: str
    default: qemu:///system
author:
  - kvmnet developers
"""

EXAMPLES = r"""
- name: Guests onto the LAN bridge
  kvmnet.fleet.guest_interface:
    domain: "{{ item }}"
    state: bridged
    bridge: br0
  loop: "{{ guests }}"

- name: Many guests at once (one module run per hypervisor, not one per guest)
  kvmnet.fleet.guest_interface:
    domains: "{{ guests }}"
    state: bridged
    bridge: br0

- name: Back to NAT
  kvmnet.fleet.guest_interface:
    domain: web1
    state: nat
    network: default

- name: A second NIC on the LAN, its MAC unique across the fleet
  kvmnet.fleet.guest_interface:
    domain: web1
    state: present
    bridge: br0
    mac_key: lan2

- name: Remove a NIC by MAC
  kvmnet.fleet.guest_interface:
    domain: web1
    state: absent
    mac: "02:5a:11:22:33:44"
"""

RETURN = r"""
interface:
  description: The NIC after the change (for V(absent) - as it was), or null.
  returned: success
  type: dict
  sample: {"mac": "52:54:00:12:34:56", "type": "bridge", "source": "br0", "mode": "bridged",
           "index": 0}
summary:
  description: kvmnet's one-line summary of the change.
  returned: success
  type: str
notes:
  description: What kvmnet decided on the way (e.g. a live change skipped and why).
  returned: success
  type: list
  elements: str
applied_live:
  description: The running guest was changed (with O(domains) - any of them).
  returned: success
  type: bool
guests:
  description: With O(domains) - per guest, in order, its RV(interface), RV(summary), whether
    it changed and whether the running guest did.
  returned: success, with O(domains)
  type: list
  elements: dict
error:
  description: Class name of the kvmnet error behind a failure (e.g. V(NetworkNotFound)).
  returned: failure
  type: str
"""

from typing import Any

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.kvmnet.fleet.plugins.module_utils.kvmnet_common import (
    interface_facts,
    kvmnet_failures,
    parse_selector,
    require_kvmnet,
)

# The options DOCUMENTATION describes (tests/unit/test_ansible_collection.py compares them).
ARGUMENT_SPEC: dict[str, Any] = {
    "domain": {"type": "str"},
    "domains": {"type": "list", "elements": "str"},
    "state": {
        "type": "str",
        "default": "bridged",
        "choices": ["bridged", "nat", "present", "absent"],
    },
    "iface": {"type": "str"},
    "bridge": {"type": "str"},
    "network": {"type": "str"},
    "mac": {"type": "str"},
    "mac_key": {"type": "str", "no_log": False},
    "mac_scope": {"type": "str"},
    "live": {"type": "bool"},
    "uri": {"type": "str", "default": "qemu:///system"},
}


def derived_mac(scope: str, domain: str, key: str) -> str:
    """The deterministic MAC of ``scope/domain/key``: kvmnet's keyed allocation over the
    locally administered space (46 bits), with no host read - the same on every run."""
    from kvmnet import MacAllocator

    return MacAllocator([], mode="random").allocate(key=f"{scope}/{domain}/{key}")


def _present(module: AnsibleModule, dom: Any, live: bool | None) -> Any:
    params = module.params
    bridge, network = params["bridge"], params["network"]
    if (bridge is None) == (network is None):
        module.fail_json(msg="state=present needs exactly one of bridge or network")
    mac = params["mac"]
    if mac is None:
        scope = params["mac_scope"]
        if not scope:
            module.fail_json(
                msg="state=present without mac needs mac_scope (set by the action plugin "
                "to inventory_hostname; give it or mac when calling the module directly)"
            )
        mac = derived_mac(scope, params["domain"], params["mac_key"] or bridge or network)
    check = module.check_mode
    if any(i.mac == mac for i in dom.interfaces):
        if bridge is not None:
            return dom.use_bridge(bridge, mac, live=live, dry_run=check)
        return dom.use_nat(network, mac, live=live, dry_run=check)
    return dom.add_interface(bridge=bridge, network=network, mac=mac, live=live, dry_run=check)


def _absent(module: AnsibleModule, dom: Any, live: bool | None) -> Any:
    selector: str | int | None = module.params["mac"] or parse_selector(module.params["iface"])
    if isinstance(selector, int):
        there = 0 <= selector < len(dom.interfaces)
    elif selector is not None:
        from kvmnet.core.macs import normalize_mac

        selector = normalize_mac(selector)
        there = any(i.mac == selector for i in dom.interfaces)
    else:
        module.fail_json(msg="state=absent needs iface or mac: the NIC to remove")
        return None
    if not there:
        return None
    return dom.remove_interface(selector, live=live, dry_run=module.check_mode)


def run_many(module: AnsibleModule) -> dict[str, Any]:
    """``domains``: every guest's first NIC in one connection, through kvmnet's bulk call."""
    import kvmnet
    from kvmnet import bulk

    params = module.params
    state = params["state"]
    if state not in ("bridged", "nat"):
        module.fail_json(msg=f"domains goes with state=bridged or state=nat, not state={state}")
    if params["iface"] is not None:
        module.fail_json(msg="domains moves each guest's first NIC: drop iface, or use domain")
    if state == "bridged" and not params["bridge"]:
        module.fail_json(msg="state=bridged needs bridge: the host bridge to use")
    options = {"live": params["live"], "dry_run": module.check_mode}
    with kvmnet.connect(params["uri"]) as host:
        if state == "bridged":
            changes = bulk.bridge_many(host, params["bridge"], params["domains"], **options)
        else:
            network = params["network"] or "default"
            changes = bulk.nat_many(host, network, params["domains"], **options)
    guests = [
        {
            "domain": c.domain,
            "changed": c.changed or c.applied,
            "interface": interface_facts(c.interface),
            "summary": c.summary(),
            "applied_live": c.applied_live,
        }
        for c in changes
    ]
    result: dict[str, Any] = {
        "changed": any(g["changed"] for g in guests),
        "guests": guests,
        "applied_live": any(g["applied_live"] for g in guests),
        "summary": f"{sum(g['changed'] for g in guests)} of {len(guests)} guests changed",
        "notes": [note for c in changes for note in c.notes],
    }
    if module._diff:
        result["diff"] = [
            {
                "before": c.before,
                "after": c.after,
                "before_header": f"{c.domain}.xml (before)",
                "after_header": f"{c.domain}.xml (after)",
            }
            for c in changes
            if c.changed or c.applied
        ]
    return result


def run(module: AnsibleModule) -> dict[str, Any]:
    """Do what the task asks; the result dict for exit_json."""
    import kvmnet

    params = module.params
    if params["domains"] is not None:
        return run_many(module)
    state = params["state"]
    live = params["live"]
    iface = parse_selector(params["iface"])
    with kvmnet.connect(params["uri"]) as host:
        dom = host.domain(params["domain"])
        if state == "bridged":
            if not params["bridge"]:
                module.fail_json(msg="state=bridged needs bridge: the host bridge to use")
            change = dom.use_bridge(params["bridge"], iface, live=live, dry_run=module.check_mode)
        elif state == "nat":
            change = dom.use_nat(
                params["network"] or "default", iface, live=live, dry_run=module.check_mode
            )
        elif state == "present":
            change = _present(module, dom, live)
        else:
            change = _absent(module, dom, live)
        if change is None:
            return {"changed": False, "interface": None, "summary": "no such interface",
                    "notes": [], "applied_live": False}  # fmt: skip
        changed = change.changed or change.applied
        result: dict[str, Any] = {
            "changed": changed,
            "interface": interface_facts(change.interface),
            "summary": change.summary(),
            "notes": list(change.notes),
            "applied_live": change.applied_live,
        }
        if module._diff and changed:
            result["diff"] = {
                "before": change.before,
                "after": change.after,
                "before_header": f"{change.domain}.xml (before)",
                "after_header": f"{change.domain}.xml (after)",
            }
        return result


def main() -> None:
    module = AnsibleModule(
        argument_spec=ARGUMENT_SPEC,
        mutually_exclusive=[("bridge", "network"), ("domain", "domains")],
        required_one_of=[("domain", "domains")],
        supports_check_mode=True,
    )
    require_kvmnet(module.fail_json)
    where = module.params["domain"] or module.params["domains"]
    with kvmnet_failures(module.fail_json, domain=where):
        module.exit_json(**run(module))


if __name__ == "__main__":
    main()
