"""Debian's ``/etc/network/interfaces`` (interfaces(5)) as text kvmnet can edit in place.

Pure: no I/O beyond the ``read``/``list_dir`` callables it is given. The reader follows
``source`` and ``source-directory`` includes (relative paths are relative to the including
file's folder, as ifupdown reads them; ``source-directory`` takes the file names ifupdown
takes, ``^[a-zA-Z0-9_-]+$``), splits each file into stanzas and keeps every line as it was,
so an edit rewrites only the lines it must and everything else comes back byte for byte.

Bridging NIC into BR rewrites the NIC's stanzas like this (lines kvmnet adds sit between
two marker comments; the NIC's original lines stay in the file behind ``#kvmnet|``, so the
release puts them back exactly)::

    auto eth0                              <- untouched
    # kvmnet: begin br0 ...
    #kvmnet|iface eth0 inet dhcp
    #kvmnet|    dns-nameservers 10.0.0.1
    iface eth0 inet manual
    ...
    auto br0
    iface br0 inet dhcp
        bridge_ports eth0
        ...
        dns-nameservers 10.0.0.1
    # kvmnet: end br0
"""

from __future__ import annotations

import fnmatch
import posixpath
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

__all__ = [
    "BEGIN",
    "END",
    "LINK_LEVEL",
    "ORIGINAL",
    "Config",
    "Stanza",
    "bridge_lines",
    "is_link_level",
    "read_config",
    "split_lines",
]

#: Stanza keywords (interfaces(5)); any other first word continues the current stanza.
KEYWORDS = frozenset(
    {"iface", "mapping", "auto", "source", "source-directory", "no-auto-down", "no-scripts",
     "rename", "template"}
)
#: Options that describe the link itself: they stay on the port (``manual`` takes
#: ``hwaddress`` and ``mtu``; bonds, VLANs and ethtool settings belong to the device).
LINK_LEVEL = ("hwaddress", "mtu", "bond-", "slaves", "vlan-raw-device", "ethernet-", "link-",
              "offload-", "hardware-", "wireless-", "wpa-", "ovs-")
#: The prefix of the NIC's original lines kept in the file while it is bridged.
ORIGINAL = "#kvmnet|"
BEGIN = "# kvmnet: begin "
END = "# kvmnet: end "
_SOURCE_NAME = re.compile(r"^[a-zA-Z0-9_-]+$")


def split_lines(text: str) -> list[str]:
    """``text`` as lines that keep their endings (joined back, they are the same bytes)."""
    return text.splitlines(keepends=True)


def _words(line: str) -> list[str]:
    return line.split()


def _is_comment_or_blank(line: str) -> bool:
    stripped = line.strip()
    return not stripped or stripped.startswith("#")


def is_link_level(option: str) -> bool:
    """Whether option ``option`` (``bond-mode``, ``bond_mode``...) stays on the port."""
    key = option.replace("_", "-")
    return any(key == p or (p.endswith("-") and key.startswith(p)) for p in LINK_LEVEL)


@dataclass(frozen=True)
class Stanza:
    """An ``iface NAME FAMILY METHOD`` stanza: its file, line range and options.

    Attributes:
        path: the file it is in.
        start: the index of its ``iface`` line in the file's lines.
        end: the index after its last line (trailing blank and comment lines left out).
        name: the interface it configures.
        family: ``inet`` or ``inet6``.
        method: ``static``, ``dhcp``, ``manual``...
        options: ``(name, value)`` pairs, in order.
    """

    path: str
    start: int
    end: int
    name: str
    family: str
    method: str
    options: tuple[tuple[str, str], ...] = ()

    @property
    def where(self) -> str:
        """``path:line`` of the ``iface`` line, for messages."""
        return f"{self.path}:{self.start + 1}"


@dataclass
class Config:
    """Every file read, and the stanzas, ``auto``/``allow-*`` lines and ``mapping`` stanzas
    found in them, in reading order.

    Attributes:
        files: path -> its lines.
        stanzas: the ``iface`` stanzas.
        autos: ``(path, line index, "auto" or "allow-CLASS", names)`` of each such line.
        mappings: ``(path, line index, globs)`` of each ``mapping`` stanza.
    """

    files: dict[str, list[str]] = field(default_factory=dict)
    stanzas: list[Stanza] = field(default_factory=list)
    autos: list[tuple[str, int, str, tuple[str, ...]]] = field(default_factory=list)
    mappings: list[tuple[str, int, tuple[str, ...]]] = field(default_factory=list)

    def stanzas_of(self, name: str) -> list[Stanza]:
        """The ``iface`` stanzas of ``name`` (inet and inet6), in reading order.

        Args:
            name: the interface's name.

        Returns:
            Its stanzas; empty when none configures it.
        """
        return [s for s in self.stanzas if s.name == name]

    def auto_class(self, name: str) -> str | None:
        """Which line brings ``name`` up.

        Args:
            name: the interface's name.

        Returns:
            ``"auto"`` or ``"allow-CLASS"``, else None.
        """
        for _path, _line, kind, names in self.autos:
            if name in names:
                return kind
        return None

    def mapped(self, name: str) -> str | None:
        """Where a ``mapping`` stanza covers ``name`` (a glob).

        Args:
            name: the interface's name.

        Returns:
            ``path:line`` of the mapping, else None.
        """
        for path, line, globs in self.mappings:
            if any(fnmatch.fnmatchcase(name, g) for g in globs):
                return f"{path}:{line + 1}"
        return None


Reader = Callable[[str], "str | None"]
Lister = Callable[[str], "Sequence[str] | None"]


def read_config(path: str, read: Reader, list_dir: Lister) -> Config:
    """Read ``path`` and everything it sources. A file that is missing reads as empty.

    Args:
        path: the main file, e.g. ``/etc/network/interfaces`` (as the target machine names it).
        read: the text of a path, or None when it does not exist.
        list_dir: the names in a folder, or None when it does not exist.

    Returns:
        The `Config`; a file sourced twice is read once.
    """
    config = Config()
    _read_file(config, path, read, list_dir)
    return config


def _expand(pattern: str, base: str, list_dir: Lister) -> list[str]:
    full = pattern if pattern.startswith("/") else posixpath.join(base, pattern)
    folder, glob = posixpath.split(full)
    if not any(c in glob for c in "*?["):
        return [full]
    names = list_dir(folder) or ()
    return [posixpath.join(folder, n) for n in sorted(names) if fnmatch.fnmatchcase(n, glob)]


def _read_file(config: Config, path: str, read: Reader, list_dir: Lister) -> None:
    if path in config.files:
        return
    text = read(path)
    lines = split_lines(text) if text is not None else []
    config.files[path] = lines
    base = posixpath.dirname(path)
    current: list[object] | None = None  # [start, name, family, method, options, last]

    def close(at: int) -> None:
        nonlocal current
        if current is None:
            return
        start, name, family, method, options, last = current
        assert isinstance(start, int) and isinstance(last, int) and isinstance(options, list)
        config.stanzas.append(
            Stanza(path, start, last + 1, str(name), str(family), str(method), tuple(options))
        )
        current = None

    includes: list[tuple[str, str]] = []
    i = 0
    while i < len(lines):
        # A trailing backslash continues the line (interfaces(5)).
        logical, j = lines[i].rstrip("\n"), i
        while logical.endswith("\\") and j + 1 < len(lines):
            j += 1
            logical = logical[:-1] + lines[j].rstrip("\n")
        words = _words(logical)
        if not words or words[0].startswith("#"):
            i = j + 1
            continue
        head = words[0]
        if head in KEYWORDS or head.startswith("allow-"):
            close(i)
            if head == "iface" and len(words) >= 4:
                current = [i, words[1], words[2], words[3], [], j]
            elif head == "auto" or head.startswith("allow-"):
                config.autos.append((path, i, head, tuple(words[1:])))
            elif head == "mapping":
                config.mappings.append((path, i, tuple(words[1:])))
            elif head == "source" and len(words) > 1:
                includes += [("file", w) for w in words[1:]]
            elif head == "source-directory" and len(words) > 1:
                includes += [("dir", w) for w in words[1:]]
        elif current is not None:
            options = current[4]
            assert isinstance(options, list)
            options.append((head, logical.strip()[len(head):].strip()))
            current[5] = j
        i = j + 1
    close(len(lines))
    for kind, pattern in includes:
        if kind == "file":
            for found in _expand(pattern, base, list_dir):
                _read_file(config, found, read, list_dir)
        else:
            folder = pattern if pattern.startswith("/") else posixpath.join(base, pattern)
            for name in sorted(list_dir(folder) or ()):
                if _SOURCE_NAME.match(name):
                    _read_file(config, posixpath.join(folder, name), read, list_dir)


def bridge_lines(
    *,
    bridge: str,
    nic: str,
    mac: str,
    stanzas: Iterable[Stanza],
    stp: bool,
    forward_delay: int,
    auto: str | None,
    indent: str = "    ",
) -> list[str]:
    """The bridge's stanzas: one per family the NIC had, carrying its IP-level options.

    The first stanza also holds the bridge-utils options: ports, STP, forward delay, the
    NIC's MAC (``bridge_hw``: the bridge keeps the NIC's DHCP identity and IPv6 link-local).
    """
    out = [f"auto {bridge}\n"] if auto is not None else []
    first = True
    for stanza in stanzas:
        out.append(f"iface {bridge} {stanza.family} {stanza.method}\n")
        if first:
            out += [
                f"{indent}bridge_ports {nic}\n",
                f"{indent}bridge_stp {'on' if stp else 'off'}\n",
                f"{indent}bridge_fd {forward_delay}\n",
                f"{indent}bridge_maxwait 0\n",
                f"{indent}bridge_hw {mac}\n",
            ]
            first = False
        out += [f"{indent}{k} {v}".rstrip() + "\n" for k, v in stanza.options
                if not is_link_level(k)]
    return out
