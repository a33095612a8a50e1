"""Plan: what str(plan) shows (files with content and diff, argv, checks), repr, HTML."""

from __future__ import annotations

from kvmnet.hostnet.model.plan import (
    Check,
    Plan,
    RemoveFile,
    RunCommand,
    StartProcess,
    StopProcess,
    WriteFile,
)


def sample() -> Plan:
    return Plan(
        backend="ifcfg",
        action="enslave",
        nic="eth0",
        bridge="br0",
        steps=(
            StopProcess(99, ("dhclient", "eth0"), why="holds eth0"),
            WriteFile("/etc/ifcfg-br0", "DEVICE=br0\nTYPE=Bridge\n", mode=0o644, why="new"),
            WriteFile(
                "/etc/ifcfg-eth0",
                "DEVICE=eth0\nBRIDGE=br0\n",
                previous="DEVICE=eth0\nBOOTPROTO=dhcp\n",
            ),
            RemoveFile("/etc/old", previous="x\n"),
            RunCommand(("nmcli", "connection", "up", "my nic"), "activate"),
            StartProcess(("dhclient", "br0")),
        ),
        checks=(Check("port-of", "eth0", "br0", "eth0 is a port of br0"), Check("link-up", "br0")),
        rollback_hints=(RunCommand(("nmcli", "connection", "reload")),),
        warnings=("STP on",),
        dry_run=True,
    )


def test_str_shows_every_file_command_and_check_in_order() -> None:
    text = str(sample())
    order = [
        "kill -TERM 99",
        "create /etc/ifcfg-br0 (mode 0644)",
        "| DEVICE=br0",
        "| TYPE=Bridge",
        "replace /etc/ifcfg-eth0",
        "-BOOTPROTO=dhcp",
        "+BRIDGE=br0",
        "remove /etc/old",
        "$ nmcli connection up 'my nic'    # activate",
        "$ dhclient br0 &",
        "eth0 is a port of br0",
        "link-up br0",
        "nmcli connection reload",
    ]
    positions = [text.index(s) for s in order]
    assert positions == sorted(positions)
    assert "# WARNING: STP on" in text and "# dry run" in text


def test_diff_of_a_new_file_is_against_dev_null() -> None:
    diff = WriteFile("/etc/a", "x\n").diff()
    assert diff.startswith("--- /dev/null\n+++ /etc/a\n") and "+x\n" in diff


def test_files_and_commands() -> None:
    plan = sample()
    assert plan.files == ("/etc/ifcfg-br0", "/etc/ifcfg-eth0", "/etc/old")
    assert plan.commands == (
        ("kill", "-TERM", "99"),
        ("nmcli", "connection", "up", "my nic"),
        ("dhclient", "br0"),
    )


def test_repr_and_html() -> None:
    plan = sample()
    assert repr(plan) == (
        "<Plan ifcfg enslave 'eth0' -> 'br0' dry-run: 6 steps, 2 checks, 3 files>"
    )
    html = plan._repr_html_()
    # Tables of the 6 steps, the 2 checks and the rollback hint (test_html_views.py: the rest).
    assert html.count("<table") == 3 and html.count("<tr>") == (1 + 6) + (1 + 2) + (1 + 1)
