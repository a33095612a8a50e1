"""``kvmnet completion bash``: the generated script completes commands, options and choices
when bash runs it (the script is sourced in a real bash and its function called)."""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest

pytestmark = pytest.mark.skipif(shutil.which("bash") is None, reason="no bash")


def complete(*words: str) -> list[str]:
    script = subprocess.run(
        [sys.executable, "-m", "kvmnet", "completion", "bash"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    quoted = " ".join(f"'{w}'" for w in words)
    probe = (
        f"{script}\nCOMP_WORDS=({quoted}); COMP_CWORD={len(words) - 1}; _kvmnet; "
        'printf "%s\\n" "${COMPREPLY[@]}"'
    )
    out = subprocess.run(["bash", "-c", probe], capture_output=True, text=True, check=True)
    return out.stdout.split()


def test_commands_complete() -> None:
    assert complete("kvmnet", "ho") == ["host-bridge", "host-release"]


def test_options_of_the_command_complete() -> None:
    assert complete("kvmnet", "-c", "test:///default", "bridge", "--cre") == ["--create-from"]


def test_choices_complete() -> None:
    assert complete("kvmnet", "host-bridge", "eth0", "br0", "--backend", "n") == [
        "nmcli",
        "netplan",
        "networkd",
    ]


def test_hidden_options_stay_hidden() -> None:
    assert "--state-dir" not in complete("kvmnet", "host-bridge", "--")
