"""The host ARP table fallback of Domain.addresses() (the kernel's /proc/net/arp format)."""

from __future__ import annotations

from pathlib import Path

import pytest

from kvmnet.virt import addresses
from kvmnet.virt.addresses import GuestAddress

ARP = """IP address       HW type     Flags       HW address            Mask     Device
192.168.1.23     0x1         0x2         52:54:00:aa:bb:01     *        br0
192.168.1.24     0x1         0x0         52:54:00:aa:bb:02     *        br0
10.0.0.5         0x1         0x2         52:54:00:AA:BB:03     *        br1
192.168.1.1      0x1         0x2         00:11:22:33:44:55     *        br0
"""


def test_proc_arp_rows_for_the_guests_macs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    table = tmp_path / "arp"
    table.write_text(ARP)
    monkeypatch.setattr(addresses, "_PROC_ARP", table)
    found = addresses._proc_arp({"52:54:00:aa:bb:01", "52:54:00:aa:bb:02", "52:54:00:aa:bb:03"})
    # Incomplete entries (flags 0x0) are not answers; MACs compare case-insensitively.
    assert found == [
        GuestAddress("52:54:00:aa:bb:01", "192.168.1.23", None, "arp"),
        GuestAddress("52:54:00:aa:bb:03", "10.0.0.5", None, "arp"),
    ]
    assert str(found[0]) == "52:54:00:aa:bb:01 192.168.1.23 (arp)"


def test_missing_arp_table_is_no_answer(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(addresses, "_PROC_ARP", tmp_path / "absent")
    assert addresses._proc_arp({"52:54:00:aa:bb:01"}) == []
