"""ifupdown inside a lab host namespace, hermetic: its own files, state and hooks' outputs.

ifup/ifdown run with ``-i FILE --state-dir DIR`` (the backend's ``interfaces``/``state_dir``)
and, through :class:`IfupdownRunner`, inside a private mount and UTS namespace whose
``/run``, ``/etc/resolv.conf`` and ``/var/lib/dhcp`` are folders of the lab: the DHCP client
ifupdown starts (ISC dhclient with the stock dhclient-script) writes its PID file, leases and
resolv.conf there, never on the machine, and two labs never share a PID file.

::

    lab = IfupdownLab(host, tmp_path)
    lab.write("auto eth0\\niface eth0 inet dhcp\\n")
    lab.ifup(host.nic)
    backend = lab.backend()
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from kvmnet.backends import IfupdownBackend
from kvmnet.hostnet.runners.runner import NetnsRunner

from .netns import LabHost, kill_if_running

__all__ = ["IfupdownLab", "IfupdownRunner"]

# Binds the lab's folders over the machine's, then runs the command (argv after them).
_PRIVATE = (
    'mount --bind "$1" /run && mount --bind "$2" /etc/resolv.conf && '
    'mount --bind "$3" /var/lib/dhcp && shift 3 && exec "$@"'
)


class IfupdownRunner(NetnsRunner):
    """A NetnsRunner whose ifup/ifdown/ifquery run in the lab's private mount namespace."""

    def __init__(self, netns: str, state: Path) -> None:
        super().__init__(netns)
        self.state = state

    def _wrap(self, argv: Sequence[str]) -> list[str]:
        # dhclient too: a rollback restarts the DHCP client ifup had started, with its argv.
        if argv and argv[0] in ("ifup", "ifdown", "ifquery", "dhclient"):
            argv = ["unshare", "--mount", "--uts", "--propagation", "private", "sh", "-c",
                    _PRIVATE, "sh", str(self.state / "run"), str(self.state / "resolv.conf"),
                    str(self.state / "dhcp"), *argv]  # fmt: skip
        return super()._wrap(argv)


class IfupdownLab:
    """``root/etc/network/interfaces`` for one lab host, and ifupdown acting on it."""

    def __init__(self, host: LabHost, root: Path) -> None:
        self.host = host
        self.root = root
        self.state = root / "lab"
        for sub in ("run", "dhcp", "ifstate"):
            (self.state / sub).mkdir(parents=True, exist_ok=True)
        (self.state / "resolv.conf").write_text("")
        (root / "etc" / "network" / "interfaces.d").mkdir(parents=True, exist_ok=True)
        self.file = root / "etc" / "network" / "interfaces"
        self.runner = IfupdownRunner(host.ns, self.state)

    def write(self, text: str, name: str | None = None) -> Path:
        """Write the main file (or ``interfaces.d/NAME``)."""
        path = self.file if name is None else self.file.parent / "interfaces.d" / name
        path.write_text(text)
        return path

    def backend(self) -> IfupdownBackend:
        return IfupdownBackend(root=str(self.root), runner=self.runner,
                               state_dir=str(self.state / "ifstate"), files_only=False)

    def _argv(self, verb: str, *names: str) -> list[str]:
        return [verb, "-i", str(self.file), "--state-dir", str(self.state / "ifstate"), *names]

    def ifup(self, *names: str) -> str:
        return self.runner.run(self._argv("ifup", *names), timeout=60).stdout

    def ifdown(self, *names: str) -> str:
        return self.runner.run(self._argv("ifdown", *names), check=False, timeout=60).stdout

    def state_of(self) -> str:
        """``ifquery --state``: what ifupdown believes is up."""
        return self.runner.run(self._argv("ifquery", "--state"), check=False).stdout

    def query(self, name: str) -> dict[str, str]:
        """``ifquery NAME``: the options ifupdown reads for NAME from the files."""
        out = self.runner.run(self._argv("ifquery", name)).stdout
        return dict(line.split(": ", 1) for line in out.splitlines() if ": " in line)

    def dhclients(self) -> list[list[str]]:
        """The ISC dhclient processes running in the host's namespace."""
        return [argv for argv in self.host.commands().values()
                if argv and Path(argv[0]).name == "dhclient"]

    def close(self) -> None:
        # Stop what ifup started (dhclient), by the PIDs its PID files name.
        for pidfile in (self.state / "run").glob("dhclient*.pid"):
            pid = pidfile.read_text().strip()
            if pid.isdigit():
                kill_if_running(int(pid), "dhclient")  # the file may outlive its dhclient
