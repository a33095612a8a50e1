"""Which machine a libvirt URI names, for host-side work (pure: no I/O).

libvirt's URI says where the guests live; the host side (NICs, bridges, the dead-man timer)
must act on that same machine. `machine_of` reads it the way libvirt's own remote
driver does::

    machine_of("qemu:///system")                                # this machine
    machine_of("qemu+ssh://root@hv2:2222/system?keyfile=/k")    # hv2, over SSH

=======================================  =====================================================
URI                                      machine
=======================================  =====================================================
``qemu:///system``, ``qemu+unix:///...``  this machine (``kind="local"``)
``qemu+ssh://[user@]host[:port]/...``     ``host`` over OpenSSH (``kind="ssh"``); the query's
                                         ``keyfile=``, ``no_verify=``, ``command=`` (the
                                         ssh client to run) and ``known_hosts=`` are
                                         honoured as libvirt's ssh transport does
``test:///...``, ``qemu+tcp://``, ...    refused for host-side work
                                         (`PreflightRefused`, check
                                         ``host-side``): no machine kvmnet can reach
=======================================  =====================================================
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal
from urllib.parse import parse_qs, urlsplit

from ...errors import PreflightRefused

__all__ = ["LOCAL", "Machine", "machine_of"]

# A host name or address as ssh takes it; a leading "-" would be read as an option.
_HOST = re.compile(r"^[A-Za-z0-9_.:%\[\]][A-Za-z0-9_.:%\[\]-]*$")
_USER = re.compile(r"^[A-Za-z0-9_.][A-Za-z0-9_.@-]*$")


@dataclass(frozen=True)
class Machine:
    """The machine host-side work acts on: this one (``kind="local"``) or one reached over SSH.

    Made by `machine_of` from a libvirt URI.

    Attributes:
        kind: ``"local"`` (this machine) or ``"ssh"``.
        host: the SSH host name as the URI writes it (None when local).
        user: the SSH user (None: ssh's default, or ``~/.ssh/config``'s).
        port: the SSH port (None: 22 or ``~/.ssh/config``'s).
        keyfile: the URI's ``keyfile=`` (an identity file for ssh ``-i``).
        no_verify: the URI's ``no_verify=1``: the host key is not checked.
        known_hosts: the URI's ``known_hosts=`` file.
        command: the URI's ``command=``: the ssh program to run.
        uri: the libvirt URI it came from (empty for this machine without one).
    """

    kind: Literal["local", "ssh"]
    host: str | None = None
    user: str | None = None
    port: int | None = None
    keyfile: str | None = None
    no_verify: bool = False
    known_hosts: str | None = None
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

_SSH_TRANSPORTS = {"ssh"}
_LOCAL_TRANSPORTS = {"", "unix"}


def _flag(query: dict[str, list[str]], key: str) -> bool:
    value = (query.get(key) or ["0"])[-1].strip().lower()
    return value not in {"", "0", "no", "false"}


def _last(query: dict[str, list[str]], key: str) -> str | None:
    values = query.get(key)
    return values[-1] if values else None


def _refuse(uri: str, why: str) -> PreflightRefused:
    return PreflightRefused(
        f"{uri!r} names no machine kvmnet can act on for host-side work ({why}): connect with "
        "qemu:///system on the hypervisor itself, or qemu+ssh://[user@]HOST/system from "
        "elsewhere",
        check="host-side",
    )


def machine_of(uri: str) -> Machine:
    """The machine that libvirt ``uri`` names (see the module docstring).

    Args:
        uri: a libvirt connection URI, e.g. ``qemu+ssh://root@hv2/system?keyfile=/k``.

    Returns:
        `LOCAL` for a URI of this machine, else an SSH `Machine`.

    Raises:
        PreflightRefused: check ``host-side``: the test driver, or a transport other than
            ssh to another machine (tcp, tls, libssh, ext), or a malformed host/user/port.
    """
    parts = urlsplit(uri)
    driver, _, transport = parts.scheme.partition("+")
    if not driver:
        raise _refuse(uri, "no driver in the URI")
    if driver == "test":
        raise _refuse(uri, "the test driver simulates guests; it has no host network")
    try:
        port = parts.port
    except ValueError:
        raise _refuse(uri, f"port {parts.netloc.rsplit(':', 1)[-1]!r} is not a number") from None
    host = parts.hostname
    if transport in _LOCAL_TRANSPORTS and not host:
        return Machine("local", uri=uri)
    if transport not in _SSH_TRANSPORTS:
        how = f"transport {transport!r}" if transport else "TLS to another host"
        raise _refuse(uri, f"{how}: kvmnet reaches another machine only over ssh")
    if not host or not _HOST.match(host):
        raise _refuse(uri, f"host {host!r} is not a host name or address")
    user = parts.username
    if user is not None and not _USER.match(user):
        raise _refuse(uri, f"user {user!r} is not a user name")
    query = parse_qs(parts.query)
    keyfile, known_hosts, command = (_last(query, k) for k in ("keyfile", "known_hosts", "command"))
    return Machine(
        "ssh",
        host=host,
        user=user,
        port=port,
        keyfile=keyfile or None,
        no_verify=_flag(query, "no_verify"),
        known_hosts=known_hosts or None,
        command=command or None,
        uri=uri,
    )
