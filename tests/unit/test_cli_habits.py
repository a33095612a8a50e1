"""CLI habits through the real entry point: ``--live --config``, ``--json`` everywhere with
JSON errors, a closed stdout, and messages in the CLI's words."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from kvmnet.cli import build_parser
from kvmnet.testing import Guest, Nic, bridge_network, nat_network, world_uri
from tests.lab import LabHost, Lan


def kvmnet(*args: str, stdout: int | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "kvmnet", *args],
        stdout=subprocess.PIPE if stdout is None else stdout,
        stderr=subprocess.PIPE,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture
def uri(tmp_path: Path) -> str:
    return world_uri(
        tmp_path,
        Guest("web1", nics=(Nic.network(mac="52:54:00:00:00:01"),)),
        Guest("web2", nics=(Nic.network(mac="52:54:00:00:00:02"),)),
        Guest("test", running=False, nics=(Nic.network(mac="52:54:00:00:00:03"),)),
        networks=(nat_network(), bridge_network()),
    )


def _commands() -> dict[str, object]:
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    assert sub.choices is not None
    return {k: v for k, v in dict(sub.choices).items() if not k.startswith("__")}


# --live --config ---------------------------------------------------------------------------


def _live_dest(command: str, *argv: str) -> object:
    args = build_parser().parse_args(["-c", "test:///default", command, *argv])
    return args.live


@pytest.mark.parametrize(
    "command", ["bridge", "nat", "add-nic", "remove-nic", "bridge-all", "nat-all"]
)
def test_every_command_with_live_takes_live_and_config_together(command: str) -> None:
    positional = {
        "bridge": ["web1", "br0"],
        "nat": ["web1"],
        "add-nic": ["web1", "--bridge", "br0"],
        "remove-nic": ["web1", "0"],
        "bridge-all": ["br0", "web1"],
        "nat-all": ["web1"],
    }[command]
    assert _live_dest(command, *positional) is None
    assert _live_dest(command, *positional, "--config") is False
    assert _live_dest(command, *positional, "--live") is True
    # virsh's "both", in either order, is kvmnet's --live.
    assert _live_dest(command, *positional, "--live", "--config") is True
    assert _live_dest(command, *positional, "--config", "--live") is True


def test_the_live_options_are_the_same_everywhere() -> None:
    helps = {
        name: [a.help for a in p._actions if "--config" in a.option_strings]  # type: ignore[attr-defined]
        for name, p in _commands().items()
    }
    with_config = {name for name, h in helps.items() if h}
    assert with_config == {"bridge", "nat", "add-nic", "remove-nic", "bridge-all", "nat-all"}


def test_live_and_config_do_what_live_does(uri: str) -> None:
    # The test driver cannot change a running guest: --live is refused there, --config is not.
    for guest in ("web1", "test"):
        base = ("-c", uri, "add-nic", guest, "--network", "default", "--json")
        live = kvmnet(*base, "--live")
        assert live.returncode == 1, live.stdout
        for both in (("--live", "--config"), ("--config", "--live")):
            res = kvmnet(*base, *both)
            assert (res.returncode, res.stderr) == (1, live.stderr)
        config = kvmnet(*base, "--config")
        assert config.returncode == 0, config.stderr
        change = json.loads(config.stdout)
        assert change["applied_live"] is False and change["applied_config"] is True


# --json ------------------------------------------------------------------------------------


def test_every_command_takes_json() -> None:
    for name, parser in _commands().items():
        options = [o for a in parser._actions for o in a.option_strings]  # type: ignore[attr-defined]
        assert "--json" in options, name


def test_change_commands_print_a_change(uri: str) -> None:
    res = kvmnet("-c", uri, "bridge", "test", "br0", "--json")
    assert res.returncode == 0, res.stderr
    change = json.loads(res.stdout)
    assert change["domain"] == "test" and change["action"] == "use_bridge"
    assert change["applied_config"] is True and change["dry_run"] is False
    assert change["interface"]["source"] == "br0" and change["interface"]["mode"] == "bridged"
    assert "+      <source bridge='br0'/>" in change["diff"]

    res = kvmnet("-c", uri, "remove-nic", "test", "52:54:00:00:00:03", "--dry-run", "--json")
    change = json.loads(res.stdout)
    assert change["dry_run"] is True and change["interface"]["mac"] == "52:54:00:00:00:03"
    assert "-    <interface type='network'>" in change["diff"]

    res = kvmnet("-c", uri, "nat", "test", "--config", "--json")
    change = json.loads(res.stdout)
    assert change["changed"] is False and change["diff"] == ""  # already on default


def test_bulk_commands_print_a_list_of_changes(uri: str) -> None:
    res = kvmnet("-c", uri, "bridge-all", "br0", "--on-network", "default", "--dry-run", "--json")
    assert res.returncode == 0, res.stderr
    changes = json.loads(res.stdout)
    assert sorted(c["domain"] for c in changes) == ["test", "web1", "web2"]
    assert all(c["dry_run"] and c["interface"]["source"] == "br0" for c in changes)
    res = kvmnet("-c", uri, "nat-all", "--on-bridge", "br0", "--json")
    assert res.returncode == 0 and json.loads(res.stdout) == []


def test_completion_json_holds_the_script() -> None:
    res = kvmnet("completion", "fish", "--json")
    assert json.loads(res.stdout)["shell"] == "fish"
    assert "complete -c kvmnet" in json.loads(res.stdout)["script"]


def test_errors_are_json_on_stderr_with_the_same_exit_codes(uri: str, tmp_path: Path) -> None:
    refused = kvmnet("-c", uri, "bridge", "nope", "br0", "--json")
    assert refused.returncode == 1 and refused.stdout == ""
    error = json.loads(refused.stderr)
    assert error["type"] == "DomainNotFound" and error["status"] == 1
    assert "no domain named 'nope'" in error["error"]

    usage = kvmnet("-c", uri, "bridge", "web1", "--json")
    assert usage.returncode == 2
    assert json.loads(usage.stderr) == {
        "error": "kvmnet bridge: the following arguments are required: BRIDGE",
        "type": "UsageError",
        "status": 2,
    }
    bulk = kvmnet("-c", uri, "bridge-all", "br0", "--json")  # neither names nor a selector
    assert bulk.returncode == 2 and json.loads(bulk.stderr)["type"] == "UsageError"

    confirm = kvmnet("confirm", "--state-dir", str(tmp_path), "--json")
    assert confirm.returncode == 1
    assert "nothing waits for confirmation" in json.loads(confirm.stderr)["error"]

    plain = kvmnet("-c", uri, "bridge", "nope", "br0")  # without --json: the one line
    assert plain.stderr.startswith("kvmnet: no domain named 'nope'")


def test_json_after_double_dash_is_a_name_not_the_option(uri: str) -> None:
    res = kvmnet("-c", uri, "bridge", "--", "--json")
    assert res.returncode == 2 and res.stderr.startswith("usage:")


# a closed stdout ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "args", [("domains", "--json"), ("domains",), ("bridge", "test", "br0", "--dry-run")]
)
def test_a_closed_stdout_exits_quietly(uri: str, args: tuple[str, ...]) -> None:
    read, write = os.pipe()
    os.close(read)  # the reader is gone before the first byte: every write is EPIPE
    try:
        res = kvmnet("-c", uri, *args, stdout=write)
    finally:
        os.close(write)
    assert res.returncode == 1
    assert res.stderr == ""


def test_head_takes_the_first_line_without_a_traceback(tmp_path: Path) -> None:
    # Enough guests that the listing does not fit in the pipe's buffer.
    many = world_uri(tmp_path, *(Guest(f"guest{n:03}") for n in range(300)))
    res = subprocess.run(
        ["sh", "-c", f'"{sys.executable}" -m kvmnet -c "{many}" domains --json | head -1'],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert res.stdout == "[\n"
    assert res.stderr == ""


# CLI words ---------------------------------------------------------------------------------


def test_refusals_say_the_options_not_the_keywords(uri: str) -> None:
    # The test driver cannot change a running guest: --live is refused with advice.
    res = kvmnet("-c", uri, "bridge", "web1", "br0", "--live")
    assert res.returncode == 1
    assert "pass --config" in res.stderr
    assert "live=" not in res.stderr


def test_the_library_keeps_its_python_words(uri: str) -> None:
    import kvmnet as lib

    with lib.connect(uri) as host, pytest.raises(lib.KvmnetError, match=r"live=False"):
        host.domain("web1").use_bridge("br0", live=True)


@pytest.fixture(scope="module")
def lan() -> Iterator[Lan]:
    with Lan("kvw") as lan:
        yield lan


@pytest.fixture
def host(lan: Lan) -> LabHost:
    return lan.add_host(mac=f"52:54:00:ee:01:{len(lan.hosts) + 1:02x}")


@pytest.mark.root("network namespaces")
@pytest.mark.integration
def test_host_bridge_json_and_its_refusals_in_cli_words(host: LabHost) -> None:
    base = ("host-bridge", host.nic, "br0", "--backend", "iproute2", "--netns", host.ns)
    res = kvmnet(*base, "--dry-run", "--json")
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)
    assert out["applied"] is False and out["plan"]["dry_run"] is True
    assert ["ip", "link", "set", host.nic, "master", "br0"] in [
        c[-6:] for c in out["plan"]["commands"]
    ]
    assert out["plan"]["checks"]

    # The NIC already in a bridge: refused, the override said as the option it is.
    host.ip("link", "add", "brx", "type", "bridge")
    host.ip("link", "set", host.nic, "master", "brx")
    try:
        res = kvmnet(*base, "--dry-run", "--json")
        assert res.returncode == 1
        error = json.loads(res.stderr)
        assert error["type"] == "PreflightRefused"
        assert "--force enslaved" in error["error"] and "force=" not in error["error"]
        res = kvmnet(*base, "--dry-run", "--force", "bogus")
        assert res.returncode == 1 and "unknown --force" in res.stderr, res.stderr
    finally:
        host.ip("link", "set", host.nic, "nomaster")
        host.ip("link", "del", "brx")
