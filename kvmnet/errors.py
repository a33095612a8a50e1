"""kvmnet's exception tree.

Every error kvmnet raises derives from `KvmnetError`; where a builtin fits, the error
is also that builtin, so ``except LookupError`` keeps working in code that predates kvmnet::

    KvmnetError
    ├── ConnectionFailed                    cannot open or use a libvirt connection
    │   ├── LibvirtMissing (ImportError)    libvirt-python is not installed or does not load
    │   └── ConnectionLost                  the daemon died or froze mid-change; says what stands
    ├── NotFound (LookupError)
    │   ├── DomainNotFound
    │   ├── NetworkNotFound
    │   ├── InterfaceNotFound
    │   └── HostNicNotFound
    ├── InvalidInput (ValueError)
    │   ├── InvalidType (TypeError)         an argument of the wrong type ("false" for a bool)
    │   ├── InvalidMac
    │   ├── UntrustedPath                   a path another user could have written (StrictModes),
    │   │                                   or a directory where a file belongs
    │   ├── InvalidName                     bridge / NIC / network names that no tool accepts
    │   └── UnsupportedEdit                 the XML edit cannot be expressed for that type
    ├── MacInUse
    ├── MacSpaceExhausted
    ├── LiveChangeUnsupported               the running guest cannot take the change live
    ├── LibvirtError                        any other libvirt failure, cause chained
    ├── PreflightRefused                    a host plan was refused before touching anything
    │   └── InvalidBridgeName (InvalidName) a bridge name no kernel takes (check "bridge-name")
    ├── PlanFailed
    │   ├── RolledBack                      it failed and the snapshot was restored
    │   ├── RollbackFailed                  it failed and so did the restore: read the message
    │   ├── PartiallyApplied                a later step failed; the message says what stands
    │   └── StalePlan (ConcurrentChange)    a file changed since the plan was made: nothing ran
    ├── ValidationFailed                    a real tool rejected a rendered config file
    ├── CommandFailed                       a command a plan runs exited non-zero
    ├── ConfirmationError                   `kvmnet confirm` with no pending apply, or too late
    ├── ConcurrentChange                    another writer changed what kvmnet was about to write

Usage::

    try:
        host.domain("web1")
    except kvmnet.DomainNotFound as exc:
        print(exc)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

__all__ = [
    "CommandFailed",
    "ConcurrentChange",
    "ConfirmationError",
    "ConnectionFailed",
    "ConnectionLost",
    "DomainNotFound",
    "HostNicNotFound",
    "InterfaceNotFound",
    "InvalidBridgeName",
    "InvalidInput",
    "InvalidMac",
    "InvalidName",
    "InvalidType",
    "KvmnetError",
    "LibvirtError",
    "LibvirtMissing",
    "LiveChangeUnsupported",
    "MacInUse",
    "MacSpaceExhausted",
    "NetworkNotFound",
    "NotFound",
    "PartiallyApplied",
    "PlanFailed",
    "PreflightRefused",
    "RollbackFailed",
    "RolledBack",
    "StalePlan",
    "UnsupportedEdit",
    "UntrustedPath",
    "ValidationFailed",
]


class KvmnetError(Exception):
    """Base of every error kvmnet raises."""


class ConnectionFailed(KvmnetError):
    """A libvirt connection could not be opened (the message names the URI) or was lost.

    Args:
        message: what failed and what to do, on one line or a few.
        uri: the libvirt URI (kept as ``.uri``).
    """

    def __init__(self, message: str, *, uri: str | None = None) -> None:
        super().__init__(message)
        self.uri = uri


class LibvirtMissing(ConnectionFailed, ImportError):
    """libvirt-python, which only connecting needs, is not installed or does not load.

    Raised when kvmnet's libvirt boundary is first imported: by ``kvmnet.connect`` (or
    ``Host``, ``Domain``, ``GuestAddress``), never by ``import kvmnet``. ``name`` is
    ``"libvirt"``, as for any ImportError of that module.

    Args:
        message: what is missing and how to install it, on one line.
    """

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.name = "libvirt"


class NotFound(KvmnetError, LookupError):
    """Something named does not exist."""

    def __str__(self) -> str:
        # LookupError would repr() a single argument (KeyError does); keep the plain message.
        return str(self.args[0]) if self.args else ""


class DomainNotFound(NotFound):
    """No domain (guest) of that name on the host."""


class NetworkNotFound(NotFound):
    """No libvirt network of that name on the host."""


class InterfaceNotFound(NotFound):
    """No guest interface matches the MAC, index or object given."""


class HostNicNotFound(NotFound):
    """No host network interface of that name (in that namespace)."""


class InvalidInput(KvmnetError, ValueError):
    """An argument is malformed; the message quotes it and says what is accepted."""


class InvalidType(InvalidInput, TypeError):
    """An argument has the wrong type (a str where a bool or a number belongs, bytes for a
    name, a single str for a list); the message quotes it and names the type wanted."""


class InvalidMac(InvalidInput):
    """A MAC address or prefix is malformed, multicast, broadcast or all-zero."""


class InvalidName(InvalidInput):
    """A bridge, NIC, network or namespace name that the kernel or a tool would refuse."""


class UnsupportedEdit(InvalidInput):
    """The requested XML edit cannot be expressed (e.g. an element not allowed on the new type)."""


class MacInUse(KvmnetError):
    """The MAC is already used.

    Args:
        message: what failed and what to do, on one line or a few.
        mac: the MAC (kept as ``.mac``).
        used_by: who uses it: domains, hosts, networks, NICs (kept as ``.used_by``).
    """

    def __init__(self, message: str, *, mac: str, used_by: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.mac = mac
        self.used_by = tuple(used_by)


class MacSpaceExhausted(KvmnetError):
    """Every MAC under the prefix is in use or was handed out already."""


class LiveChangeUnsupported(KvmnetError):
    """The running guest cannot take the change live; ``live=False`` changes next boot only."""


class LibvirtError(KvmnetError):
    """libvirt refused an operation; the original ``libvirt.libvirtError`` is ``__cause__``.

    Args:
        message: what failed and what to do, on one line or a few.
        code: libvirt's error code (kept as ``.code``), when known.
    """

    def __init__(self, message: str, *, code: int | None = None) -> None:
        super().__init__(message)
        self.code = code


class PreflightRefused(KvmnetError):
    """A host plan was refused before anything changed; the message names the override.

    Args:
        message: what failed and what to do, on one line or a few.
        check: the refusing check's name, as ``force=`` takes it (kept as ``.check``).
    """

    def __init__(self, message: str, *, check: str) -> None:
        super().__init__(message)
        self.check = check


class InvalidBridgeName(PreflightRefused, InvalidName):
    """``Bridge(name)`` with a name the kernel refuses.

    A preflight refusal (check ``"bridge-name"``, never overridable) and an `InvalidName`, as
    the guest side raises for the same name.

    Args:
        message: what failed and what to do, on one line or a few.
    """

    def __init__(self, message: str) -> None:
        super().__init__(message, check="bridge-name")


class PlanFailed(KvmnetError):
    """Applying a host plan failed."""


class RolledBack(PlanFailed):
    """Applying failed, and the host was restored to its snapshot."""


class RollbackFailed(PlanFailed):
    """Applying failed and restoring the snapshot failed too: the message lists what stands.

    Also raised when every difference is gone but a rollback command failed (a daemon may
    not have re-read the restored files), and when a file another writer changed after
    kvmnet wrote it was left as it is rather than restored over that change.

    Args:
        message: what failed and what to do, on one line or a few.
        originals: every file the plan touched as it was before (None: absent), by path
            (kept as ``.originals``; empty where the caller had no snapshot).
    """

    def __init__(
        self, message: str, *, originals: Mapping[str, bytes | None] | None = None
    ) -> None:
        super().__init__(message)
        self.originals: dict[str, bytes | None] = dict(originals or {})


class ValidationFailed(KvmnetError):
    """A real tool (netplan generate, nmcli --offline, ...) rejected a rendered file."""


class CommandFailed(KvmnetError):
    """A command exited non-zero.

    Args:
        message: what failed and what to do, on one line or a few.
        argv: the command as run (kept as ``.argv``).
        returncode: its exit status (kept as ``.returncode``).
        stderr: its error output (kept as ``.stderr``).
    """

    def __init__(
        self, message: str, *, argv: Sequence[str], returncode: int, stderr: str = ""
    ) -> None:
        super().__init__(message)
        self.argv = tuple(argv)
        self.returncode = returncode
        self.stderr = stderr


class ConfirmationError(KvmnetError):
    """No apply waits for confirmation, or it was rolled back already."""


class PartiallyApplied(PlanFailed):
    """A multi-step change failed after an earlier step had succeeded.

    E.g. the host bridge was made, then the guest switch failed. The message says exactly
    what stands.

    Args:
        message: what failed and what to do, on one line or a few.
        done: the steps that were done and stand (kept as ``.done``).
    """

    def __init__(self, message: str, *, done: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.done = tuple(done)


class UntrustedPath(InvalidInput):
    """A path kvmnet would trust that another user could have written.

    A state directory or file, the MAC ledger, a backend root's config dirs: wrong owner,
    group/world-writable, or a symlink leading elsewhere. Refused as OpenSSH's StrictModes
    would; the message says how to fix it. Also a directory (or a symlink loop) where kvmnet
    reads or writes a file.

    Args:
        message: what failed and what to do, on one line or a few.
        path: the path (kept as ``.path``).
    """

    def __init__(self, message: str, *, path: str) -> None:
        super().__init__(message)
        self.path = path


class ConnectionLost(ConnectionFailed):
    """libvirtd died or froze while a change was being applied.

    The message says what stands, read back on a fresh connection (not guessed from the
    error).

    Args:
        message: what failed and what to do, on one line or a few.
        uri: the libvirt URI (kept as ``.uri``).
        outcome: ``"applied"``, ``"not applied"``, ``"half-applied"`` (the running guest and
            its persistent definition differ: run the same call again to complete it) or
            ``"unknown"`` (no fresh connection could read it back); kept as ``.outcome``.
    """

    def __init__(self, message: str, *, uri: str | None = None, outcome: str = "unknown") -> None:
        super().__init__(message, uri=uri)
        self.outcome = outcome


class ConcurrentChange(KvmnetError):
    """Another writer changed what kvmnet read before writing it (a domain's definition,
    every time kvmnet tried again; a host file a plan was made from); nothing was
    overwritten."""


class StalePlan(PlanFailed, ConcurrentChange):
    """A file a host plan writes or removes is no longer what the plan was made from: another
    writer changed it since. Refused before any step ran; plan again.

    Args:
        message: what failed and what to do, on one line or a few.
        paths: the files that changed (kept as ``.paths``).
    """

    def __init__(self, message: str, *, paths: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.paths = tuple(paths)
