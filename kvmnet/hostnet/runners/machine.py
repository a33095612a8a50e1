"""Which machine a libvirt URI names, for host-side work (pure: no I/O).

libvirt's URI says where the guests live; the host side (NICs, bridges, the dead-man timer)
must act on that same machine, as the same user, with the same key and host-key policy.
`machine_of` reads the URI with libvirt's own rules
(`kvmnet.hostnet.runners.libvirturi`: libxml2's syntax, %-decoding, libvirt's query
parameters) and takes from it what libvirt's ssh transport hands to ``ssh``::

    machine_of("qemu:///system")                                # this machine
    machine_of("qemu+ssh://root@hv2:2222/system?keyfile=/k")    # hv2, over SSH

=======================================  =====================================================
URI                                      machine
=======================================  =====================================================
``qemu:///system``, ``qemu+unix:///...``  this machine (``kind="local"``)
``qemu+ssh://[user@]host[:port]/...``     ``host`` over OpenSSH (``kind="ssh"``); no host is
                                         ``localhost``, as libvirt has it. Of the query,
                                         ``keyfile=`` (``-i``), ``no_verify=`` (an integer;
                                         not 0: ``StrictHostKeyChecking=no``) and
                                         ``command=`` (the ssh client to run) are used as
                                         libvirt's ssh transport uses them; ``known_hosts=``
                                         is ignored, as that transport ignores it (it is for
                                         libssh/libssh2)
``test:///...``, ``qemu+tcp://``, ...    refused for host-side work
                                         (`PreflightRefused`, check
                                         ``host-side``): no machine kvmnet can reach
=======================================  =====================================================

A URI libvirt would refuse (it cannot parse it, ``no_verify=yes``, ``mode=bogus``, ...) is
refused here too, naming the value, before anything runs.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from typing import Literal

from ... import _log
from ...errors import PreflightRefused
from .libvirturi import LibvirtUri, parse_uri

__all__ = ["LOCAL", "Machine", "machine_of"]

log = _log.get(__name__)

# A host name as ssh takes it (after %-decoding): a leading "-" would be read as an option,
# and shell or control characters have no place in a name.
_HOST = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")
# An IPv6 zone (fe80::1%eth0): an interface name or index.
_ZONE = re.compile(r"[A-Za-z0-9_.-]+")
# What a user name must not hold: OpenSSH (9.6 and later) refuses these itself, since ssh
# may hand the name to a shell (%r in ProxyCommand, Match exec).
_USER_BAD = set("'`\";&<>|(){}")
_C_INT = re.compile(r"[ \t\n\v\f\r]*([+-]?[0-9]+)")
_INT_MAX = 2**31 - 1
# libvirt's remoteDriverMode and virNetClientProxyType names (compared case-sensitively).
_MODES = ("auto", "legacy", "direct")
_PROXIES = ("auto", "netcat", "native")


@dataclass(frozen=True)
class Machine:
    """The machine host-side work acts on: this one (``kind="local"``) or one reached over SSH.

    Made by `machine_of` from a libvirt URI.

    Attributes:
        kind: ``"local"`` (this machine) or ``"ssh"``.
        host: the SSH host name as the URI writes it (None when local).
        user: the SSH user (None: ssh's default, or ``~/.ssh/config``'s).
        port: the SSH port (None: 22 or ``~/.ssh/config``'s).
        keyfile: the URI's ``keyfile=`` (an identity file for ssh ``-i``; "" when the URI
            says ``keyfile=``, which libvirt hands to ssh as it is).
        no_verify: the URI's ``no_verify=N`` with N not 0: the host key is not checked.
        command: the URI's ``command=``: the ssh program to run.
        uri: the libvirt URI it came from (empty for this machine without one).
    """

    kind: Literal["local", "ssh"]
    host: str | None = None
    user: str | None = None
    port: int | None = None
    keyfile: str | None = None
    no_verify: bool = False
    command: str | None = None
    uri: str = ""

    @property
    def is_local(self) -> bool:
        """True for this machine."""
        return self.kind == "local"

    @property
    def identity(self) -> tuple[str, str, int]:
        """What makes two machines the same: the host name as written (lower case) and the
        port. Two names for one host compare as different machines (see ``other-machine``)."""
        if self.kind == "local":
            return ("local", "", 0)
        return ("ssh", (self.host or "").lower(), self.port or 22)

    def same_as(self, other: Machine) -> bool:
        """Whether ``other`` is the same machine (by `identity`).

        Args:
            other: the machine to compare with.

        Returns:
            True when both name one machine.
        """
        return self.identity == other.identity

    @property
    def destination(self) -> str:
        """``user@host`` (or ``host``) as ssh takes it; "this machine" when local."""
        if self.kind == "local":
            return "this machine"
        return f"{self.user}@{self.host}" if self.user else str(self.host)

    def __str__(self) -> str:
        if self.kind == "local":
            return "this machine"
        port = f":{self.port}" if self.port else ""
        return f"{self.destination}{port}"


#: This machine.
LOCAL = Machine("local")

_LOCAL_TRANSPORTS = {"", "unix"}


def _refuse(uri: str, why: str) -> PreflightRefused:
    return PreflightRefused(
        f"{uri!r} names no machine kvmnet can act on for host-side work ({why}): connect with "
        "qemu:///system on the hypervisor itself, or qemu+ssh://[user@]HOST/system from "
        "elsewhere",
        check="host-side",
    )


def _unparsable(uri: str) -> PreflightRefused:
    """Why libvirt cannot parse ``uri`` ("Unable to parse URI"), said as precisely as a look
    at its authority allows."""
    _, sep, rest = uri.partition("://")
    authority = re.split(r"[/?#]", rest, maxsplit=1)[0] if sep else ""
    hostport = authority.rpartition("@")[2]
    if ":" not in uri or not re.match(r"[A-Za-z][A-Za-z0-9+.-]*:", uri):
        why = "no driver in the URI, such as qemu+ssh://"
    elif authority.count("@") > 1:
        why = f"{authority!r} has more than one '@': write an '@' in the user name as %40"
    elif hostport.startswith("[") and "]" not in hostport:
        why = f"{hostport!r} opens '[' but does not close it"
    elif not hostport.startswith("[") and hostport.count(":") > 1:
        why = (
            f"{hostport!r}: an IPv6 address goes in brackets, e.g. qemu+ssh://[2001:db8::5]/system"
        )
    elif ":" in hostport and not re.fullmatch(r"[0-9]+", hostport.rpartition(":")[2]):
        why = f"port {hostport.rpartition(':')[2]!r} is not a number"
    elif ":" in hostport and int(hostport.rpartition(":")[2]) > _INT_MAX:
        why = f"port {hostport.rpartition(':')[2]} is out of range (1-65535)"
    else:
        why = (
            'libvirt cannot parse it either ("Unable to parse URI"): %-encode characters a '
            "URI may not hold"
        )
    return _refuse(uri, why)


def _c_int(value: str) -> int | None:
    """``value`` as libvirt's ``virStrToLong_i`` reads it (strtol, base 10, leading white
    space and a sign allowed, nothing after the digits, within a C int); None where libvirt
    refuses it."""
    match = _C_INT.fullmatch(value)
    if match is None:
        return None
    number = int(match.group(1))
    return number if -_INT_MAX - 1 <= number <= _INT_MAX else None


def _check_options(uri: str, parsed: LibvirtUri) -> None:
    """Refuse what libvirt's remote driver refuses in the query (doRemoteOpen)."""
    for name in ("no_sanity", "no_verify", "no_tty"):
        for value in parsed.params_named(name):
            if _c_int(value) is None:
                raise _refuse(
                    uri,
                    f"{name}={value!r} is not a whole number, so libvirt refuses the URI: "
                    f"{name}=1 means yes, {name}=0 no",
                )
    mode = parsed.param("mode")
    if mode is not None and mode not in _MODES:
        raise _refuse(uri, f"mode={mode!r} is unknown to libvirt: use one of {', '.join(_MODES)}")
    if mode == "direct" and parsed.param("socket") is None:
        raise _refuse(uri, "libvirt cannot use mode=direct over ssh: drop it or use mode=auto")
    proxy = parsed.param("proxy")
    if proxy is not None and proxy not in _PROXIES:
        raise _refuse(
            uri, f"proxy={proxy!r} is unknown to libvirt: use one of {', '.join(_PROXIES)}"
        )
    if parsed.param("command") == "":
        raise _refuse(uri, "command= is empty, so libvirt finds no ssh client: name one or drop it")


def _check_host(uri: str, host: str) -> str:
    if host.startswith("[") and host.endswith("]"):
        raise _refuse(
            uri,
            f"host {host!r}: brackets hold an IPv6 address only (libvirt would hand ssh the "
            f"brackets too): write the name without them, e.g. qemu+ssh://{host[1:-1]}/system",
        )
    if ":" in host:
        address, _, zone = host.partition("%")
        try:
            ipaddress.IPv6Address(address)
        except ValueError:
            raise _refuse(uri, f"host {host!r} is not an IPv6 address") from None
        if "%" in host and not _ZONE.fullmatch(zone):
            raise _refuse(uri, f"host {host!r}: zone {zone!r} is not an interface name or index")
        return host
    if not _HOST.fullmatch(host):
        raise _refuse(uri, f"host {host!r} is not a host name or address")
    return host


def _check_user(uri: str, user: str) -> str:
    if not user or uri.partition("://")[2].startswith("@"):
        raise _refuse(uri, "the user before '@' is empty: name the user, or drop the '@'")
    bad = sorted({c for c in user if c in _USER_BAD or c.isspace() or not c.isprintable()})
    if bad:
        why = f"it holds {''.join(bad)!r}"
    elif user.startswith("-"):
        why = "it starts with '-', which ssh would read as an option"
    elif user.endswith("\\"):
        why = "it ends in '\\'"
    else:
        return user
    raise _refuse(uri, f"user {user!r} is not a user name ssh takes: {why}")


def machine_of(uri: str) -> Machine:
    """The machine that libvirt ``uri`` names (see the module docstring).

    Args:
        uri: a libvirt connection URI, e.g. ``qemu+ssh://root@hv2/system?keyfile=/k``.

    Returns:
        `LOCAL` for a URI of this machine, else an SSH `Machine`.

    Raises:
        PreflightRefused: check ``host-side``: the test driver, or a transport other than
            ssh to another machine (tcp, tls, libssh, ext), a URI libvirt refuses (it cannot
            parse it, ``no_verify=yes``, ``mode=bogus``), or a host, user or port ssh cannot
            safely take.
    """
    parsed = parse_uri(uri)
    if parsed is None:
        raise _unparsable(uri)
    driver, _, transport = parsed.scheme.partition("+")
    transport = transport.lower()  # libvirt compares the transport without regard to case
    if driver.lower() == "test":
        raise _refuse(uri, "the test driver simulates guests; it has no host network")
    if transport in _LOCAL_TRANSPORTS and parsed.server is None:
        return Machine("local", uri=uri)
    if transport != "ssh":
        how = f"transport {transport!r}" if transport else "TLS to another host"
        raise _refuse(uri, f"{how}: kvmnet reaches another machine only over ssh")
    _check_options(uri, parsed)
    # libvirt's remote driver: no host is localhost (and then no port: virURIParse drops it).
    host = _check_host(uri, parsed.server or "localhost")
    if parsed.port > 65535:
        raise _refuse(uri, f"port {parsed.port} is out of range (1-65535)")
    user = None if parsed.user is None else _check_user(uri, parsed.user)
    known_hosts = parsed.param("known_hosts")
    if known_hosts is not None:
        log.info(
            "%s: known_hosts=%s is ignored: libvirt's ssh transport ignores it too (it is for "
            "libssh and libssh2); ssh checks its own known_hosts files",
            uri,
            known_hosts,
        )
    no_verify = parsed.param("no_verify")
    return Machine(
        "ssh",
        host=host,
        user=user,
        port=parsed.port or None,
        keyfile=parsed.param("keyfile"),
        no_verify=no_verify is not None and _c_int(no_verify) != 0,
        command=parsed.param("command"),
        uri=uri,
    )
