"""machine_of + SshRunner.ssh_argv against libvirt 9.0's own ssh transport, URI by URI.

The expected values are what libvirt 9.0's client library handed to ``ssh`` for each URI
(recorded with a fake ``ssh`` first on PATH, nothing connected; host, user, port, ``-i``,
``StrictHostKeyChecking=no`` and the client program), or None where libvirt refused the URI.
kvmnet must hand ssh the same, or refuse; `UNSAFE` lists the few URIs libvirt hands on but
kvmnet refuses, because ssh would take the value as an option or a shell would see it.
"""

from __future__ import annotations

import logging
import shlex
from pathlib import Path
from typing import Any

import pytest

import kvmnet
from kvmnet.errors import CommandFailed
from kvmnet.hostnet.runners.libvirturi import parse_uri
from kvmnet.hostnet.runners.machine import machine_of
from kvmnet.hostnet.runners.sshrunner import SshRunner

# (id, uri, what libvirt's ssh transport ran, or None: libvirt refused the URI)
LIBVIRT: list[tuple[str, str, dict[str, Any] | None]] = [
    ("plain", "qemu+ssh://hv2/system", {"host": "hv2"}),
    ("user", "qemu+ssh://root@hv2/system", {"host": "hv2", "user": "root"}),
    ("user_port", "qemu+ssh://root@hv2:2222/system", {"host": "hv2", "port": 2222, "user": "root"}),
    ("port", "qemu+ssh://hv2:2222/system", {"host": "hv2", "port": 2222}),
    ("user_upper", "qemu+ssh://Root@hv2/system", {"host": "hv2", "user": "Root"}),
    ("host_upper", "qemu+ssh://HV2.Example.COM/system", {"host": "HV2.Example.COM"}),
    ("host_dot", "qemu+ssh://hv2./system", {"host": "hv2."}),
    (
        "ipv4",
        "qemu+ssh://root@192.0.2.7:22/system",
        {"host": "192.0.2.7", "port": 22, "user": "root"},
    ),
    ("v6", "qemu+ssh://[2001:db8::5]/system", {"host": "2001:db8::5"}),
    ("v6_port", "qemu+ssh://[2001:db8::5]:2222/system", {"host": "2001:db8::5", "port": 2222}),
    (
        "v6_user_port",
        "qemu+ssh://root@[2001:db8::5]:2222/system",
        {"host": "2001:db8::5", "port": 2222, "user": "root"},
    ),
    ("v6_zone", "qemu+ssh://[fe80::1%25eth0]/system", {"host": "fe80::1%eth0"}),
    ("v6_zone_index", "qemu+ssh://[fe80::1%252]/system", {"host": "fe80::1%2"}),
    ("v6_nobracket", "qemu+ssh://2001:db8::5/system", None),
    ("v6_unclosed", "qemu+ssh://[2001:db8::5/system", None),
    ("alias", "qemu+ssh://hvalias/system", {"host": "hvalias"}),
    ("alias_user", "qemu+ssh://other@hvalias/system", {"host": "hvalias", "user": "other"}),
    ("alias_port", "qemu+ssh://hvalias:2022/system", {"host": "hvalias", "port": 2022}),
    ("wildcard", "qemu+ssh://box.lab/system", {"host": "box.lab"}),
    (
        "key_abs",
        "qemu+ssh://root@hv2/system?keyfile=/keys/id_hv2",
        {"host": "hv2", "user": "root", "keyfile": "/keys/id_hv2"},
    ),
    (
        "key_rel",
        "qemu+ssh://root@hv2/system?keyfile=keys/rel_key",
        {"host": "hv2", "user": "root", "keyfile": "keys/rel_key"},
    ),
    (
        "key_space",
        "qemu+ssh://root@hv2/system?keyfile=/keys/with%20space/id",
        {"host": "hv2", "user": "root", "keyfile": "/keys/with space/id"},
    ),
    (
        "key_plus",
        "qemu+ssh://root@hv2/system?keyfile=/keys/a+b/id",
        {"host": "hv2", "user": "root", "keyfile": "/keys/a+b/id"},
    ),
    (
        "key_pct2b",
        "qemu+ssh://root@hv2/system?keyfile=/keys/a%2Bb/id",
        {"host": "hv2", "user": "root", "keyfile": "/keys/a+b/id"},
    ),
    (
        "key_pct",
        "qemu+ssh://root@hv2/system?keyfile=%2Fkeys%2Fenc",
        {"host": "hv2", "user": "root", "keyfile": "/keys/enc"},
    ),
    (
        "key_tilde",
        "qemu+ssh://root@hv2/system?keyfile=~/.ssh/id_x",
        {"host": "hv2", "user": "root", "keyfile": "~/.ssh/id_x"},
    ),
    (
        "key_dash",
        "qemu+ssh://root@hv2/system?keyfile=-oProxyCommand=x",
        {"host": "hv2", "user": "root", "keyfile": "-oProxyCommand=x"},
    ),
    (
        "key_upper",
        "qemu+ssh://root@hv2/system?KEYFILE=/keys/upper",
        {"host": "hv2", "user": "root", "keyfile": "/keys/upper"},
    ),
    (
        "key_mixed",
        "qemu+ssh://root@hv2/system?Keyfile=/keys/mixed",
        {"host": "hv2", "user": "root", "keyfile": "/keys/mixed"},
    ),
    (
        "key_repeat",
        "qemu+ssh://root@hv2/system?keyfile=/k1&keyfile=/k2",
        {"host": "hv2", "user": "root", "keyfile": "/k2"},
    ),
    (
        "key_repeat_empty",
        "qemu+ssh://root@hv2/system?keyfile=/k1&keyfile=",
        {"host": "hv2", "user": "root", "keyfile": ""},
    ),
    (
        "key_noeq",
        "qemu+ssh://root@hv2/system?keyfile",
        {"host": "hv2", "user": "root", "keyfile": ""},
    ),
    (
        "key_semicolon",
        "qemu+ssh://root@hv2/system?keyfile=/k1;no_verify=1",
        {"host": "hv2", "user": "root", "keyfile": "/k1", "no_verify": True},
    ),
    (
        "key_semi_amp",
        "qemu+ssh://root@hv2/system?no_verify=1;keyfile=/k1&name=qemu:///system",
        None,
    ),
    ("kh", "qemu+ssh://root@hv2/system?known_hosts=/kh/known", {"host": "hv2", "user": "root"}),
    (
        "kh_space",
        "qemu+ssh://root@hv2/system?known_hosts=/kh/with%20space",
        {"host": "hv2", "user": "root"},
    ),
    (
        "kh_inject",
        "qemu+ssh://root@hv2/system?known_hosts=/x%20ProxyCommand=touch%20/tmp/p",
        {"host": "hv2", "user": "root"},
    ),
    (
        "kh_verify",
        "qemu+ssh://root@hv2/system?known_hosts_verify=ignore",
        {"host": "hv2", "user": "root"},
    ),
    (
        "nv1",
        "qemu+ssh://root@hv2/system?no_verify=1",
        {"host": "hv2", "user": "root", "no_verify": True},
    ),
    ("nv0", "qemu+ssh://root@hv2/system?no_verify=0", {"host": "hv2", "user": "root"}),
    ("nv_yes", "qemu+ssh://root@hv2/system?no_verify=yes", None),
    ("nv_true", "qemu+ssh://root@hv2/system?no_verify=true", None),
    ("nv_00", "qemu+ssh://root@hv2/system?no_verify=00", {"host": "hv2", "user": "root"}),
    ("nv_empty", "qemu+ssh://root@hv2/system?no_verify=", None),
    (
        "nv_neg",
        "qemu+ssh://root@hv2/system?no_verify=-1",
        {"host": "hv2", "user": "root", "no_verify": True},
    ),
    (
        "nv_2",
        "qemu+ssh://root@hv2/system?no_verify=2",
        {"host": "hv2", "user": "root", "no_verify": True},
    ),
    (
        "nv_upper",
        "qemu+ssh://root@hv2/system?NO_VERIFY=1",
        {"host": "hv2", "user": "root", "no_verify": True},
    ),
    (
        "nv_repeat",
        "qemu+ssh://root@hv2/system?no_verify=1&no_verify=0",
        {"host": "hv2", "user": "root"},
    ),
    (
        "nv_space",
        "qemu+ssh://root@hv2/system?no_verify=%201",
        {"host": "hv2", "user": "root", "no_verify": True},
    ),
    ("notty", "qemu+ssh://root@hv2/system?no_tty=1", {"host": "hv2", "user": "root"}),
    ("notty0", "qemu+ssh://root@hv2/system?no_tty=0", {"host": "hv2", "user": "root"}),
    (
        "cmd_abs",
        "qemu+ssh://root@hv2/system?command=/opt/vpn/ssh-wrapper",
        {"host": "hv2", "user": "root", "command": "/opt/vpn/ssh-wrapper"},
    ),
    ("cmd_rel", "qemu+ssh://root@hv2/system?command=ssh", {"host": "hv2", "user": "root"}),
    (
        "cmd_upper",
        "qemu+ssh://root@hv2/system?COMMAND=/opt/vpn/ssh-wrapper",
        {"host": "hv2", "user": "root", "command": "/opt/vpn/ssh-wrapper"},
    ),
    ("netcat", "qemu+ssh://root@hv2/system?netcat=/usr/bin/ncat", {"host": "hv2", "user": "root"}),
    (
        "socket",
        "qemu+ssh://root@hv2/system?socket=/run/libvirt/other-sock",
        {"host": "hv2", "user": "root"},
    ),
    ("mode_legacy", "qemu+ssh://root@hv2/system?mode=legacy", {"host": "hv2", "user": "root"}),
    ("mode_direct", "qemu+ssh://root@hv2/system?mode=direct", None),
    ("mode_auto", "qemu+ssh://root@hv2/system?mode=auto", {"host": "hv2", "user": "root"}),
    ("mode_bogus", "qemu+ssh://root@hv2/system?mode=bogus", None),
    ("proxy_nc", "qemu+ssh://root@hv2/system?proxy=netcat", {"host": "hv2", "user": "root"}),
    ("proxy_native", "qemu+ssh://root@hv2/system?proxy=native", {"host": "hv2", "user": "root"}),
    ("proxy_bogus", "qemu+ssh://root@hv2/system?proxy=bogus", None),
    (
        "sshauth",
        "qemu+ssh://root@hv2/system?sshauth=agent,privkey",
        {"host": "hv2", "user": "root"},
    ),
    ("name", "qemu+ssh://root@hv2/system?name=qemu:///session", {"host": "hv2", "user": "root"}),
    (
        "other_params",
        "qemu+ssh://root@hv2/system?auth=sasl&pkipath=/p&tls_priority=NORMAL",
        {"host": "hv2", "user": "root"},
    ),
    (
        "weird_query",
        "qemu+ssh://root@hv2/system?=x&keyfile=/k",
        {"host": "hv2", "user": "root", "keyfile": "/k"},
    ),
    ("scheme_upper", "QEMU+SSH://hv2/system", {"host": "hv2"}),
    ("transport_upper", "qemu+SSH://hv2/system", {"host": "hv2"}),
    ("scheme_mixed", "Qemu+Ssh://root@HV2/system", {"host": "HV2", "user": "root"}),
    ("xen_ssh", "xen+ssh://root@hv2/system", {"host": "hv2", "user": "root"}),
    ("bogus_transport", "qemu+sshx://hv2/system", None),
    ("slash", "qemu+ssh://hv2/system/", {"host": "hv2"}),
    ("root_path", "qemu+ssh://hv2/", {"host": "hv2"}),
    ("no_path", "qemu+ssh://hv2", {"host": "hv2"}),
    ("session", "qemu+ssh://hv2/session", {"host": "hv2"}),
    ("user_session", "qemu+ssh://alice@hv2/session", {"host": "hv2", "user": "alice"}),
    ("fragment", "qemu+ssh://hv2/system#frag", {"host": "hv2"}),
    ("empty_host", "qemu+ssh:///system", {"host": "localhost"}),
    ("empty_host_user", "qemu+ssh://root@/system", {"host": "localhost", "user": "root"}),
    ("empty_host_port", "qemu+ssh://:2222/system", {"host": "localhost"}),
    ("host_pct", "qemu+ssh://h%76%32/system", {"host": "hv2"}),
    ("host_underscore", "qemu+ssh://hv_2/system", {"host": "hv_2"}),
    ("user_at", "qemu+ssh://a@b@hv2/system", None),
    ("user_pct_at", "qemu+ssh://user%40corp@hv2/system", {"host": "hv2", "user": "user@corp"}),
    ("user_pct", "qemu+ssh://r%6Fot@hv2/system", {"host": "hv2", "user": "root"}),
    ("user_colon", "qemu+ssh://a:b@hv2/system", {"host": "hv2", "user": "a:b"}),
    ("user_backslash", "qemu+ssh://DOM%5Cuser@hv2/system", {"host": "hv2", "user": "DOM\\user"}),
    (
        "user_pct_ok",
        "qemu+ssh://user%40corp.example@hv2/system",
        {"host": "hv2", "user": "user@corp.example"},
    ),
    ("port0", "qemu+ssh://hv2:0/system", {"host": "hv2"}),
    ("port65535", "qemu+ssh://hv2:65535/system", {"host": "hv2", "port": 65535}),
    ("port_alpha", "qemu+ssh://hv2:abc/system", None),
    ("port_empty", "qemu+ssh://hv2:/system", None),
    ("port_lead0", "qemu+ssh://hv2:0022/system", {"host": "hv2", "port": 22}),
    ("port_fullwidth", "qemu+ssh://hv2:\uff12\uff12/system", None),
    ("host_nfkc", "qemu+ssh://hv2\uff03x/system", None),
    ("host_unicode", "qemu+ssh://héte/system", None),
]

# libvirt hands these to ssh; kvmnet refuses them, saying why.
UNSAFE = [
    ("qemu+ssh://[hv2]/system", "brackets hold an IPv6 address only"),
    ("qemu+ssh://hv2;touch%20x/system", "not a host name"),
    ("qemu+ssh://hv2$(id)/system", "not a host name"),
    ("qemu+ssh://-oProxyCommand=x/system", "not a host name"),
    ("qemu+ssh://%2DoProxyCommand=x/system", "not a host name"),
    ("qemu+ssh://-oProxyCommand=x@hv2/system", "starts with '-'"),
    ("qemu+ssh://a%0Ab@hv2/system", "not a user name"),
    ("qemu+ssh://a%3Bb@hv2/system", "not a user name"),
    ("qemu+ssh://@hv2/system", "user before '@' is empty"),
    ("qemu+ssh://hv2:65536/system", "out of range"),
    ("qemu+ssh://[fe80::1%25a%20b]/system", "not an interface"),
]


def _ssh_sees(uri: str) -> dict[str, Any]:
    """What kvmnet's ssh command line for ``uri`` tells ssh, in the form of LIBVIRT."""
    argv = SshRunner(machine_of(uri), multiplex=False).ssh_argv(["true"])
    end = argv.index("--")
    seen: dict[str, Any] = {"host": argv[end + 1]}
    if argv[0] != "ssh":
        seen["command"] = argv[0]
    opts = argv[1:end]
    for flag, key in (("-p", "port"), ("-l", "user"), ("-i", "keyfile")):
        if flag in opts:
            value = opts[opts.index(flag) + 1]
            seen[key] = int(value) if key == "port" else value
    if "StrictHostKeyChecking=no" in opts:
        seen["no_verify"] = True
    return seen


@pytest.mark.parametrize(("ident", "uri", "libvirt"), LIBVIRT, ids=[r[0] for r in LIBVIRT])
def test_ssh_gets_what_libvirts_ssh_transport_gets(
    ident: str, uri: str, libvirt: dict[str, Any] | None
) -> None:
    if libvirt is None:
        with pytest.raises(kvmnet.PreflightRefused) as caught:
            machine_of(uri)
        assert caught.value.check == "host-side" and repr(uri) in str(caught.value)
        return
    seen = _ssh_sees(uri)
    if seen.get("command") == "ssh":  # command=ssh: libvirt ran it from PATH too
        del seen["command"]
    assert seen == libvirt


@pytest.mark.parametrize(("uri", "why"), UNSAFE)
def test_what_ssh_would_misread_is_refused_with_the_reason(uri: str, why: str) -> None:
    with pytest.raises(kvmnet.PreflightRefused, match=why) as caught:
        machine_of(uri)
    assert caught.value.check == "host-side"


@pytest.mark.parametrize(
    ("value", "no_verify"),
    [("1", True), ("00", False), ("-1", True), (" 2", True), ("%0A1", True), ("+1", True),
     ("0", False), ("-0", False), ("-2147483648", True)],
)  # fmt: skip
def test_no_verify_is_an_integer_as_libvirt_reads_it(value: str, no_verify: bool) -> None:
    for name in ("no_verify", "NO_VERIFY", "No_Verify"):
        value_in_uri = value.replace(" ", "%20")
        m = machine_of(f"qemu+ssh://hv2/system?{name}={value_in_uri}")
        assert m.no_verify is no_verify, (name, value)


@pytest.mark.parametrize(
    "query",
    ["no_verify=yes", "no_verify=true", "no_verify=on", "no_verify=0x0", "no_verify=",
     "no_verify", "no_verify=1%20", "no_verify=2147483648", "no_verify=1;keyfile=/k&a=b",
     "no_verify=1&no_verify=x", "NO_TTY=x", "no_sanity=y", "mode=bogus", "mode=DIRECT",
     "mode=direct", "proxy=bogus", "command="],
)  # fmt: skip
def test_what_libvirt_refuses_in_the_query_is_refused(query: str) -> None:
    with pytest.raises(kvmnet.PreflightRefused, match="libvirt") as caught:
        machine_of(f"qemu+ssh://root@hv2/system?{query}")
    assert caught.value.check == "host-side"


def test_query_parameters_are_split_and_decoded_as_libvirt_does() -> None:
    def params(query: str) -> tuple[tuple[str, str], ...]:
        parsed = parse_uri(f"qemu+ssh://hv2/system?{query}")
        assert parsed is not None
        return parsed.params

    assert params("a=1&b=2") == (("a", "1"), ("b", "2"))
    assert params("a=1;b=2") == (("a", "1"), ("b", "2"))  # ';' when no '&' follows
    assert params("a=1;b=2&c=3") == (("a", "1;b=2"), ("c", "3"))
    assert params("a+b=c+d") == (("a+b", "c+d"),)  # '+' is not a space
    assert params("k%65y=%2Fx&&=v&n&m=") == (("key", "/x"), ("n", ""), ("m", ""))
    assert params("k=/a%00b") == (("k", "/a"),)  # a decoded NUL ends the C string
    assert params("=&k=v") == (("=&k=v", ""), ("k", "v"))  # libxml2's length-0 quirk
    m = machine_of("qemu+ssh://hv2/system?keyfile=/k1&KeyFile=/k2&Command=/opt/ssh")
    assert (m.keyfile, m.command) == ("/k2", "/opt/ssh")
    assert machine_of("qemu+ssh://hv2/system?keyfile").keyfile == ""  # libvirt: -i ""


@pytest.mark.parametrize(
    ("uri", "why"),
    [
        ("qemu+ssh://[2001:db8::5/system", "does not close"),
        ("qemu+ssh://2001:db8::5/system", "IPv6 address goes in brackets"),
        ("qemu+ssh://hv2:abc/system", "port 'abc' is not a number"),
        ("qemu+ssh://hv2:/system", "port '' is not a number"),
        ("qemu+ssh://hv2:99999999999/system", "out of range"),
        ("qemu+ssh://a@b@hv2/system", "more than one '@'"),
        ("qemu+ssh://hv2\uff03x/system", "Unable to parse URI"),
        ("qemu+ssh://h\u00e9te/system", "Unable to parse URI"),
        ("qemu+ssh://[v1.x]/system", "brackets hold an IPv6 address only"),
        ("qemu+ssh://[::1%20x]/system", "not an IPv6 address"),
        ("qemu+ssh://[1::2::3]/system", "not an IPv6 address"),
        ("hv2", "no driver"),
    ],
)
def test_a_uri_libvirt_cannot_parse_is_refused_never_a_crash(uri: str, why: str) -> None:
    with pytest.raises(kvmnet.PreflightRefused, match=why) as caught:
        machine_of(uri)
    assert caught.value.check == "host-side"


def test_known_hosts_is_ignored_and_said_so(caplog: pytest.LogCaptureFixture) -> None:
    uri = "qemu+ssh://root@hv2/system?known_hosts=/x%20ProxyCommand=touch%20/tmp/p"
    with caplog.at_level(logging.INFO, logger="kvmnet"):
        argv = SshRunner(machine_of(uri), multiplex=False).ssh_argv(["true"])
    assert not any("UserKnownHostsFile" in word or "/tmp/p" in word for word in argv)
    assert "known_hosts=/x ProxyCommand=touch /tmp/p is ignored" in caplog.text


def test_no_host_is_localhost_over_ssh_as_libvirt_has_it() -> None:
    m = machine_of("qemu+ssh://root@:2222/system")
    assert (m.kind, m.host, m.user, m.port) == ("ssh", "localhost", "root", None)


def _fake_ssh(tmp_path: Path, stderr: str) -> str:
    """An "ssh" that fails as ssh does (or as a remote command that exits 255 does)."""
    script = tmp_path / "ssh"
    script.write_text(f"#!/bin/sh\nprintf '%s\\n' {shlex.quote(stderr)} >&2\nexit 255\n")
    script.chmod(0o755)
    return str(script)


@pytest.mark.parametrize(
    ("stderr", "advice"),
    [
        ("root@hv2: Permission denied (publickey,password).", "ssh-agent"),
        ("Host key verification failed.", "no_verify=1"),
        ("No ED25519 host key is known for hv2 and you have requested strict checking.",
         "accept it once"),
        ("ssh: Could not resolve hostname hv2: Name or service not known", "gets in from here"),
    ],
)  # fmt: skip
def test_ssh_failing_by_itself_names_the_machine_and_what_to_do(
    tmp_path: Path, stderr: str, advice: str
) -> None:
    machine = machine_of("qemu+ssh://root@hv2:2222/system")
    runner = SshRunner(machine, multiplex=False, ssh=_fake_ssh(tmp_path, stderr))
    for call in (
        lambda: runner.run(["ip", "-j", "-d", "addr", "show"]),
        lambda: runner.read_file("/etc/hostname"),
        lambda: runner.read_files(["/proc/1/cmdline"]),
    ):
        with pytest.raises(CommandFailed) as caught:
            call()
        text = str(caught.value)
        assert "ssh to root@hv2:2222 failed" in text and "nothing ran there" in text
        assert advice in text and caught.value.returncode == 255


def test_a_remote_command_exiting_255_is_not_called_an_ssh_failure(tmp_path: Path) -> None:
    runner = SshRunner(
        machine_of("qemu+ssh://hv2/system"), multiplex=False, ssh=_fake_ssh(tmp_path, "oops")
    )
    with pytest.raises(CommandFailed, match=r"command `false` exited 255: oops"):
        runner.run(["false"])
    assert runner.run(["false"], check=False).returncode == 255
