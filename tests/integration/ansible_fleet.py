"""A fleet of hypervisors for the Ansible collection's tests and bench/fleet.py.

Each hypervisor is an :class:`~tests.integration.ssh_lab.SshLab` hypervisor (a hermetic
libvirtd and an sshd in one namespace) with a plain bridge ``br0``; :class:`Fleet` writes
the inventory for them and runs the real ``ansible-playbook`` over SSH with ``forks=3``. The
targets are namespaces of this machine: ``ansible_python_interpreter`` is this venv's
Python and ``PYTHONPATH`` this checkout, so the modules import the kvmnet under test.
Everything Ansible writes (its home, remote temp and async dirs, the ControlPersist
sockets, kvmnet's state dir per hypervisor) goes to a folder of the fleet's own.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .ssh_lab import Hypervisor, SshLab

REPO = Path(__file__).resolve().parents[2]
PLAYBOOKS = Path(__file__).resolve().parent / "ansible"
ANSIBLE_PLAYBOOK = str(Path(sys.executable).parent / "ansible-playbook")


@dataclass
class Play:
    """One ``ansible-playbook`` run: exit status, screen output and every task result."""

    rc: int
    stdout: str
    records: list[dict[str, Any]]

    def results(self, host: str, task: str | None = None) -> list[dict[str, Any]]:
        """The per-item (or, without a loop, per-task) results of ``host``, optionally of
        one task: a loop's summary record (the one holding ``results``) left out."""
        return [
            r for r in self.records
            if r["host"] == host
            and (task is None or r["task"] == task or r["task"].endswith(f" : {task}"))
            and "results" not in r["result"]
        ]  # fmt: skip

    def changed(self, host: str) -> int:
        """How many items/tasks reported ``changed`` on ``host``."""
        return sum(1 for r in self.results(host) if r["result"].get("changed"))

    def failed(self, host: str) -> list[dict[str, Any]]:
        return [r for r in self.results(host) if r["status"] in ("failed", "item_failed",
                                                                    "unreachable")]  # fmt: skip


@dataclass
class Fleet:
    """Hypervisors ``hv0``.. with their guests, and the inventory to reach them."""

    lab: SshLab
    hypervisors: dict[str, Hypervisor] = field(default_factory=dict)
    guests: dict[str, list[str]] = field(default_factory=dict)
    workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="kvf-")))

    def add(self, name: str, guests: list[str], *, running: tuple[str, ...] = ()) -> Hypervisor:
        """A hypervisor with ``br0`` and shut-off guests on ``default`` (``running`` ones too,
        started)."""
        hv = self.lab.add_hypervisor()
        hv.lab.run(["ip", "link", "add", "br0", "type", "bridge"])
        hv.lab.run(["ip", "link", "set", "br0", "up"])
        for guest in guests:
            hv.lab.define_guest(guest, network="default", start=guest in running)
        self.hypervisors[name] = hv
        self.guests[name] = list(guests)
        (self.workdir / name / "state").mkdir(parents=True, mode=0o700)
        return hv

    def inventory(self, **overrides: dict[str, Any]) -> Path:
        """The inventory (JSON, which is YAML); ``overrides``: extra host vars per host."""
        hosts: dict[str, Any] = {}
        for name, hv in self.hypervisors.items():
            hosts[name] = {
                "ansible_host": hv.address,
                "ansible_ssh_private_key_file": str(hv.key),
                "ansible_ssh_common_args": (
                    f"-o UserKnownHostsFile={hv.known_hosts} -o StrictHostKeyChecking=no "
                    "-o ServerAliveInterval=2 -o ServerAliveCountMax=2"
                ),
                "kvmnet_uri": hv.lab.uri,
                "guests": self.guests[name],
                "kvmnet_env": {
                    "PYTHONPATH": str(REPO),
                    "KVMNET_STATE_DIR": str(self.workdir / name / "state"),
                },
                **overrides.get(name, {}),
            }
        inventory = {
            "hypervisors": {
                "hosts": hosts,
                "vars": {
                    "ansible_user": "root",
                    "ansible_python_interpreter": sys.executable,
                    "ansible_remote_tmp": str(self.workdir / "remote-tmp"),
                    "ansible_async_dir": str(self.workdir / "async"),
                },
            }
        }
        path = self.workdir / "inventory.yml"
        path.write_text(json.dumps(inventory, indent=1))
        return path

    def play(
        self,
        playbook: str,
        *args: str,
        extra: dict[str, Any] | None = None,
        hostvars: dict[str, dict[str, Any]] | None = None,
        timeout: float = 600,
    ) -> Play:
        """Run ``ansible-playbook PLAYBOOK`` (a file of tests/integration/ansible/) with
        forks=3 over SSH; returns what it did."""
        record = self.workdir / "record.jsonl"
        record.unlink(missing_ok=True)
        home = self.workdir / "home"
        env = {
            **os.environ,
            "ANSIBLE_HOME": str(home),
            "ANSIBLE_LOCAL_TEMP": str(home / "tmp"),
            "ANSIBLE_COLLECTIONS_PATH": str(REPO),
            "ANSIBLE_COLLECTIONS_SCAN_SYS_PATH": "False",
            "ANSIBLE_CALLBACK_PLUGINS": str(PLAYBOOKS / "callback_plugins"),
            "ANSIBLE_CALLBACKS_ENABLED": "kvmnet_record",
            "ANSIBLE_FORKS": "3",
            "ANSIBLE_TIMEOUT": "5",
            "ANSIBLE_HOST_KEY_CHECKING": "False",
            "ANSIBLE_RETRY_FILES_ENABLED": "False",
            "ANSIBLE_NOCOLOR": "1",
            "ANSIBLE_DEPRECATION_WARNINGS": "False",
            # ControlPersist sockets: a short path (108 bytes at most for a unix socket).
            "ANSIBLE_SSH_CONTROL_PATH_DIR": str(self.workdir / "cp"),
            "KVMNET_RECORD": str(record),
        }
        argv = [ANSIBLE_PLAYBOOK, "-i", str(self.inventory(**(hostvars or {}))),
                str(PLAYBOOKS / playbook), *args]  # fmt: skip
        if extra:
            argv += ["--extra-vars", json.dumps(extra)]
        # stdin: /dev/null of its own. Ansible refuses to start on a non-blocking stdin, and
        # the suite's may have been left so by a program an earlier test ran on it (OpenSSH
        # sets O_NONBLOCK on the descriptions it shares and restores them only on a clean exit).
        proc = subprocess.run(
            argv, env=env, capture_output=True, text=True, timeout=timeout, check=False,
            cwd=self.workdir, stdin=subprocess.DEVNULL,
        )  # fmt: skip
        records = [json.loads(line) for line in record.read_text().splitlines()] if (
            record.exists()) else []  # fmt: skip
        return Play(proc.returncode, proc.stdout + proc.stderr, records)

    def close(self) -> None:
        shutil.rmtree(self.workdir, ignore_errors=True)
