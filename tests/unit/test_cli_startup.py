"""The command line's start-up path: what it imports, and that building only the named
command's parser parses exactly as the full parser does.

Import checks run in a fresh interpreter (this test process has long since imported libvirt
and lxml). No timing here: bench/cli_startup.py measures the speed.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import pytest

from kvmnet.cli import _COMMAND_MODULES, _MODULES, _parser_for, build_parser

ROOT = Path(__file__).resolve().parents[2]

_PROBE = r"""
import contextlib, io, json, sys
from kvmnet.cli import main
out = io.StringIO()
status = None
with contextlib.redirect_stdout(out):
    try:
        main(sys.argv[1:])
    except SystemExit as exc:
        status = exc.code
heavy = sorted(m for m in ("libvirt", "libvirtmod", "lxml", "lxml.etree") if m in sys.modules)
print(json.dumps({"status": status, "heavy": heavy, "out": out.getvalue(),
                  "logging": "logging" in sys.modules}))
"""


def _run(*argv: str) -> dict[str, object]:
    result = subprocess.run(
        [sys.executable, "-c", _PROBE, *argv],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    report: dict[str, object] = json.loads(result.stdout)
    return report


@pytest.mark.parametrize(
    "argv",
    [("--help",), ("--version",), ("bridge", "--help"), ("domains", "--help"), ("mac", "-h")],
)
def test_help_and_version_import_neither_libvirt_nor_lxml(argv: tuple[str, ...]) -> None:
    report = _run(*argv)
    assert report["status"] == 0
    assert report["out"], "printed nothing"
    assert report["heavy"] == []


def test_version_prints_the_version() -> None:
    import kvmnet

    assert _run("--version")["out"] == f"kvmnet {kvmnet.__version__}\n"


def test_top_level_help_lists_every_command() -> None:
    out = str(_run("--help")["out"])
    full = build_parser()
    sub = next(a for a in full._actions if isinstance(a, argparse._SubParsersAction))
    assert sub.choices
    for name in sub.choices:
        if name.startswith("__"):
            continue  # hidden: the shells' completion calls it, --help does not list it
        assert f"    {name} " in out or f"    {name}\n" in out, name


def test_a_listing_does_import_libvirt() -> None:
    # The probe itself can see libvirt: the tests above would otherwise pass vacuously.
    report = _run("-c", "test:///default", "domains")
    assert report["status"] is None
    assert "libvirt" in str(report["heavy"])


@pytest.mark.parametrize(
    "argv",
    [("domains",), ("bridge", "test", "br0", "--dry-run"), ("domains", "--json")],
)
def test_a_run_that_logs_nothing_never_imports_logging(argv: tuple[str, ...]) -> None:
    # kvmnet._log: the log starts at the first record that could be shown; none here.
    report = _run("-c", "test:///default", *argv)
    assert report["status"] is None
    assert report["out"]
    assert report["logging"] is False


def test_a_warning_still_reaches_the_log_when_logging_was_not_loaded() -> None:
    # The test driver cannot change a running guest: the library warns, and the command's
    # log (started by that first warning) shows it as always.
    result = subprocess.run(
        [sys.executable, "-m", "kvmnet", "-c", "test:///default", "bridge", "test", "br0"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr.startswith("kvmnet: WARNING: domain 'test': libvirt at test:///default")


def test_each_command_is_registered_by_the_module_the_table_names() -> None:
    # A run imports only its command's module: the table must name every command's own.
    import importlib

    registered: dict[str, str] = {}
    for module in _MODULES:
        parser = argparse.ArgumentParser()
        sub = parser.add_subparsers()
        importlib.import_module(f"kvmnet.cli.{module}").register(sub)
        registered.update(dict.fromkeys(sub.choices, module))
    assert registered == _COMMAND_MODULES


def test_a_run_imports_only_its_commands_module() -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys\n"
            "from kvmnet.cli import _parser_for\n"
            "_parser_for(['-c', 'test:///default', 'domains'])\n"
            "print(sorted(m for m in sys.modules if m.startswith('kvmnet.cli.')))\n",
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=True,
    )
    loaded = set(json.loads(result.stdout.replace("'", '"')))
    assert "kvmnet.cli.domains" in loaded
    assert not loaded & {f"kvmnet.cli.{m}" for m in _MODULES if m != "domains"}


# Command lines whose parse must not depend on building only their command's parser: global
# options in every spelling before the command, abbreviations, values that look like
# commands, and the cases that need the full parser (help, errors).
SAME_PARSE = [
    ["domains"],
    ["-c", "test:///default", "domains", "--json"],
    ["-ctest:///default", "bridge", "web1", "br0", "--dry-run"],
    ["-vc", "test:///default", "nat", "web1"],
    ["-vv", "--connect=test:///default", "remove-nic", "web1", "0"],
    ["--conn", "domains", "bridge", "web1", "br0"],  # "domains" is the URI here
    ["-c", "a", "-c", "b", "mac", "--count", "3"],
    ["--verbose", "add-nic", "web1", "--bridge", "br0"],
    ["completion", "bash"],
]
REFUSED = [
    [],
    ["-c"],
    ["bogus"],
    ["--", "domains"],
    ["-c", "x", "--", "domains"],
    ["bridge"],
    ["domains", "--bogus"],
]


def _parsed(parser: argparse.ArgumentParser, argv: list[str]) -> dict[str, object]:
    return vars(parser.parse_args(argv))


@pytest.mark.parametrize("argv", SAME_PARSE, ids=" ".join)
def test_the_command_parser_alone_parses_as_the_full_one(argv: list[str]) -> None:
    partial = _parser_for(argv)
    sub = next(a for a in partial._actions if isinstance(a, argparse._SubParsersAction))
    assert len(sub.choices) == 1, "built more than the named command's parser"
    assert _parsed(partial, argv) == _parsed(build_parser(), argv)


@pytest.mark.parametrize("argv", REFUSED, ids=lambda a: " ".join(a) or "(none)")
def test_refusals_are_the_full_parsers(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as full:
        build_parser().parse_args(argv)
    expected = capsys.readouterr().err
    with pytest.raises(SystemExit) as partial:
        _parser_for(argv).parse_args(argv)
    assert partial.value.code == full.value.code == 2
    assert capsys.readouterr().err == expected


@pytest.mark.parametrize("argv", [["-h", "domains"], ["--he", "bridge"], ["-vh", "mac"]])
def test_help_before_the_command_gets_the_full_parser(argv: list[str]) -> None:
    sub = next(
        a for a in _parser_for(argv)._actions if isinstance(a, argparse._SubParsersAction)
    )
    assert set(sub.choices) == set(
        next(
            a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)
        ).choices
    )


@pytest.mark.parametrize("argv", [["--version"], ["--vers"], ["-v", "--version"]])
def test_version_needs_no_command_parser(argv: list[str]) -> None:
    sub = next(
        a for a in _parser_for(argv)._actions if isinstance(a, argparse._SubParsersAction)
    )
    assert not sub.choices
    with pytest.raises(SystemExit) as done:
        _parser_for(argv).parse_args(argv)
    assert done.value.code == 0
