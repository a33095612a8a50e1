"""``kvmnet completion bash|zsh|fish``: each script is sourced in the real shell and asked
what completes; the names come from a real (test-driver) libvirt through ``kvmnet
__complete``, and nothing but candidates reaches the terminal when libvirt is unreachable."""

from __future__ import annotations

import shutil
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from kvmnet.testing import Guest, Nic, bridge_network, nat_network, world_uri
from tests.lab import LabHost, Lan

UNREACHABLE = "qemu+unix:///system?socket=/nonexistent/libvirt-sock"


@pytest.fixture(scope="module")
def bindir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory with a ``kvmnet`` command running this checkout, for the scripts to call."""
    path = tmp_path_factory.mktemp("bin")
    shim = path / "kvmnet"
    shim.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m kvmnet "$@"\n')
    shim.chmod(shim.stat().st_mode | stat.S_IXUSR)
    return path


@pytest.fixture(scope="module")
def uri(tmp_path_factory: pytest.TempPathFactory) -> str:
    return world_uri(
        tmp_path_factory.mktemp("world"),
        Guest("web1", nics=(Nic.network(),)),
        Guest("web2", nics=(Nic.bridge("br-lan"),)),
        Guest("db", running=False),
        networks=(nat_network(), bridge_network("lan", "br0")),
    )


def _script(shell: str) -> str:
    return subprocess.run(
        [sys.executable, "-m", "kvmnet", "completion", shell],
        capture_output=True,
        text=True,
        check=True,
    ).stdout


def _env(bindir: Path) -> dict[str, str]:
    import os

    return {**os.environ, "PATH": f"{bindir}:{os.environ['PATH']}"}


def complete(bindir: Path, *words: str) -> list[str]:
    """bash: the script's function called as bash calls it, with COMP_WORDS/COMP_CWORD."""
    quoted = " ".join(f"'{w}'" for w in words)
    probe = (
        f"{_script('bash')}\nCOMP_WORDS=({quoted}); COMP_CWORD={len(words) - 1}; _kvmnet; "
        'printf "%s\\n" "${COMPREPLY[@]}"'
    )
    out = subprocess.run(
        ["bash", "--norc", "-c", probe],
        capture_output=True,
        text=True,
        check=True,
        env=_env(bindir),
    )
    assert out.stderr == ""
    return out.stdout.split()


def test_commands_complete(bindir: Path) -> None:
    assert complete(bindir, "kvmnet", "ho") == ["host-bridge", "host-release"]
    assert "__complete" not in complete(bindir, "kvmnet", "")


def test_options_of_the_command_complete(bindir: Path) -> None:
    words = ("kvmnet", "-c", "test:///default", "bridge", "--cre")
    assert complete(bindir, *words) == ["--create-from"]


def test_choices_complete(bindir: Path) -> None:
    assert complete(bindir, "kvmnet", "host-bridge", "eth0", "br0", "--backend", "n") == [
        "nmcli",
        "netplan",
        "networkd",
    ]


def test_hidden_options_stay_hidden(bindir: Path) -> None:
    assert "--state-dir" not in complete(bindir, "kvmnet", "host-bridge", "--")


def test_domain_names_of_the_uri_on_the_line(bindir: Path, uri: str) -> None:
    assert complete(bindir, "kvmnet", "-c", uri, "bridge", "") == ["db", "web1", "web2"]
    assert complete(bindir, "kvmnet", "-c", uri, "nat", "w") == ["web1", "web2"]
    assert complete(bindir, "kvmnet", "-c", uri, "bridge-all", "br0", "web1", "d") == ["db"]


def test_network_and_bridge_names(bindir: Path, uri: str) -> None:
    assert complete(bindir, "kvmnet", "-c", uri, "nat", "web1", "") == ["default", "lan"]
    assert complete(bindir, "kvmnet", "-c", uri, "add-nic", "db", "--network", "l") == ["lan"]
    # Bridges: this machine's (none in the test's empty namespace) and those guests use.
    assert "br-lan" in complete(bindir, "kvmnet", "-c", uri, "bridge", "web1", "")
    assert complete(bindir, "kvmnet", "-c", uri, "nat-all", "--on-bridge", "br-") == ["br-lan"]


def test_the_default_uri_comes_from_the_environment(bindir: Path, uri: str) -> None:
    import os

    env = {**_env(bindir), "LIBVIRT_DEFAULT_URI": uri}
    out = subprocess.run(
        ["kvmnet", "__complete", "2", "kvmnet", "remove-nic", "w"],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    assert out.stdout.split() == ["web1", "web2"]
    assert os.environ.get("LIBVIRT_DEFAULT_URI") != uri


def test_unreachable_libvirt_offers_nothing_and_prints_nothing(bindir: Path) -> None:
    assert complete(bindir, "kvmnet", "-c", UNREACHABLE, "bridge", "") == []
    res = subprocess.run(
        [sys.executable, "-m", "kvmnet", "__complete", "4", "kvmnet", "-c", UNREACHABLE, "nat"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert (res.returncode, res.stdout, res.stderr) == (0, "", "")


def test_complete_is_not_in_the_help() -> None:
    res = subprocess.run(
        [sys.executable, "-m", "kvmnet", "--help"], capture_output=True, text=True, check=True
    )
    assert "__complete" not in res.stdout


@pytest.mark.skipif(shutil.which("zsh") is None, reason="no zsh (scripts/install-system-deps.sh)")
def test_zsh(bindir: Path, uri: str, tmp_path: Path) -> None:
    script = tmp_path / "_kvmnet.zsh"
    script.write_text(_script("zsh"))

    def zsh(*words: str) -> list[str]:
        quoted = " ".join(f"'{w}'" for w in words)
        # compinit registers the function (compdef); compadd only works inside a completion
        # widget, so a function of that name prints what the script hands to it.
        probe = (
            f"autoload -U compinit && compinit -u -D && source {script} && "
            "[[ ${_comps[kvmnet]} == _kvmnet ]] || exit 3; "
            'compadd() { shift $(( ${@[(i)--]} )); print -l -- "$@"; }; '
            "_files() { print -- FILES; }; "
            f"words=({quoted}); CURRENT={len(words)}; _kvmnet"
        )
        out = subprocess.run(
            ["zsh", "-f", "-c", probe], capture_output=True, text=True, env=_env(bindir), timeout=60
        )
        assert out.returncode == 0 and out.stderr == "", out.stderr
        return out.stdout.split()

    assert zsh("kvmnet", "ho") == ["host-bridge", "host-release"]
    assert zsh("kvmnet", "-c", uri, "bridge", "w") == ["web1", "web2"]
    assert zsh("kvmnet", "-c", uri, "nat", "web1", "") == ["default", "lan"]
    assert zsh("kvmnet", "host-bridge", "eth0", "br0", "--backend", "if") == ["ifcfg", "ifupdown"]
    # Nothing to offer (a file argument): zsh's own file completion.
    assert zsh("kvmnet", "show", "--svg", "") == ["FILES"]


@pytest.mark.skipif(shutil.which("fish") is None, reason="no fish (scripts/install-system-deps.sh)")
def test_fish(bindir: Path, uri: str, tmp_path: Path) -> None:
    script = tmp_path / "kvmnet.fish"
    script.write_text(_script("fish"))

    def fish(line: str) -> list[str]:
        # `complete -C LINE` is fish's own completion of LINE, as at the prompt.
        out = subprocess.run(
            ["fish", "--no-config", "-c", f"source {script}; complete -C '{line}'"],
            capture_output=True,
            text=True,
            env=_env(bindir),
            timeout=60,
        )
        assert out.returncode == 0 and out.stderr == "", out.stderr
        return [c.split("\t")[0] for c in out.stdout.splitlines()]

    assert fish("kvmnet ho") == ["host-bridge", "host-release"]
    assert fish(f"kvmnet -c {uri} bridge w") == ["web1", "web2"]
    assert fish(f"kvmnet -c {uri} nat web1 ") == ["default", "lan"]
    assert fish("kvmnet host-bridge eth0 br0 --backend ne") == ["netplan", "networkd"]
    assert fish(f"kvmnet -c {UNREACHABLE} bridge ") == []


@pytest.fixture(scope="module")
def lan() -> Iterator[Lan]:
    with Lan("kvc") as lan:
        yield lan


@pytest.mark.root("network namespaces")
@pytest.mark.integration
def test_host_bridges_and_nics_of_the_machine(lan: Lan, bindir: Path, uri: str) -> None:
    host: LabHost = lan.add_host(mac="52:54:00:ee:02:01")
    host.ip("link", "add", "brhost", "type", "bridge")
    # `ip netns exec` shows the namespace's links in /sys/class/net, as on a real host.
    argv = ["kvmnet", "__complete", "5", "kvmnet", "-c", uri, "bridge", "web1", ""]
    env = _env(bindir)
    out = subprocess.run(
        ["ip", "netns", "exec", host.ns, *argv],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    assert out.stdout.split() == ["br-lan", "brhost"]
    out = subprocess.run(
        ["ip", "netns", "exec", host.ns, "kvmnet", "__complete", "2", "kvmnet", "host-bridge"],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    assert out.stdout.split() == [host.nic]


def test_a_libvirt_that_never_answers_does_not_hang_the_tab(tmp_path: Path) -> None:
    import signal
    import socket
    import time

    # A socket that accepts the connection and never says a word: the libvirt handshake hangs.
    path = str(tmp_path / "silent-sock")
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as server:
        server.bind(path)
        server.listen(1)
        silent = f"qemu+unix:///system?socket={path}"
        started = time.monotonic()
        res = subprocess.run(
            [sys.executable, "-m", "kvmnet", "__complete", "4", "kvmnet", "-c", silent, "nat"],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        elapsed = time.monotonic() - started
    # Ended by its own alarm (SIGALRM): no candidates, nothing on the terminal.
    assert (res.returncode, res.stdout, res.stderr) == (-signal.SIGALRM, "", "")
    assert elapsed < 25  # gave up by itself (after 3 s), long before the test's own timeout
