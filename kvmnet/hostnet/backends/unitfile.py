"""systemd-style INI files (.network, .netdev): repeated sections and keys kept in order.

``configparser`` cannot read them (``[Address]`` and ``DNS=`` may repeat), so this tiny
reader keeps a list of sections, each a list of (key, value)::

    doc = UnitFile.parse("[Match]\\nName=eth0\\n[Network]\\nDHCP=ipv4\\n")
    doc.get("Network", "DHCP")   # 'ipv4'

Lines are read as systemd's own reader (``config_parse()``, systemd.syntax(7)) reads them: a
line whose first non-blank character is ``#`` or ``;`` is a comment, wherever it is; a line
ending in a backslash (not itself escaped) is joined with the next non-comment line, the
backslash replaced by a space, so::

    DNS=192.0.2.53 \\
        198.51.100.53

is one value, ``192.0.2.53      198.51.100.53``. Such a value is a `Continued`: it compares
as the joined text, and `UnitFile.render` writes the lines as they were (the setting moves
whole, comments inside it included; networkd reads them the same way).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from ...errors import InvalidInput

__all__ = ["Continued", "Section", "UnitFile", "check_value"]

# systemd's WHITESPACE and COMMENTS (src/basic/string-util.h, conf-parser.c).
_WS = " \t\n\r"
_COMMENTS = "#;"
# read_line()'s line ends: \n, \r\n or a lone \r (str.splitlines would also split on \f, \v...).
_EOL = re.compile(r"\r\n|\r|\n")


class Continued(str):
    """A value systemd joins from several lines (each but the last ending in a backslash).

    It *is* the joined value (what networkd reads: ``str`` operations see that); ``raw`` is
    the text after ``=`` as written, line breaks and backslashes included, which `UnitFile.
    render` writes back so the setting is carried verbatim.
    """

    raw: str

    def __new__(cls, value: str, raw: str) -> Continued:
        made = super().__new__(cls, value)
        made.raw = raw
        return made


def _continues(text: str) -> bool:
    """Whether ``text`` ends in a backslash that no backslash before it escapes."""
    escaped = False
    for char in text:
        escaped = not escaped and char == "\\"
    return escaped


def _logical_lines(text: str) -> list[tuple[str, list[str], bool]]:
    """Each logical line of ``text`` as systemd's reader forms it: (joined text, the physical
    lines it came from (comments inside it included), whether the file ended while it was
    still being continued)."""
    out: list[tuple[str, list[str], bool]] = []
    joined: str | None = None
    raws: list[str] = []
    physicals = _EOL.split(text)
    if physicals[-1] == "":
        physicals.pop()  # the text after the last line end: no line
    for number, physical in enumerate(physicals):
        if number == 0 and physical.startswith("\ufeff"):
            physical = physical[1:]  # a UTF-8 byte order mark, as config_parse() skips it
        bare = physical.lstrip(_WS)
        if bare and bare[0] in _COMMENTS:
            if joined is not None:
                raws.append(physical)  # skipped by systemd even inside a continuation
            continue
        joined = physical if joined is None else joined + physical
        raws.append(physical)
        if _continues(joined):
            joined = joined[:-1] + " "
            continue
        out.append((joined, raws, False))
        joined, raws = None, []
    if joined is not None:
        out.append((joined, raws, True))  # systemd parses what is left at the end of file
    return out


def check_value(key: str, value: str) -> str:
    """Refuse text that would end the line or start a new section in the file."""
    if any(c in value for c in "\n\r\0"):
        raise InvalidInput(
            f"{key}={value!r} contains a line break: systemd files hold one per line"
        )
    return value


@dataclass
class Section:
    name: str
    entries: list[tuple[str, str]] = field(default_factory=list)

    def get(self, key: str) -> str | None:
        values = [v for k, v in self.entries if k == key]
        return values[-1] if values else None

    def add(self, key: str, value: str) -> Section:
        self.entries.append((key, check_value(key, value)))
        return self


@dataclass
class UnitFile:
    sections: list[Section] = field(default_factory=list)

    @classmethod
    def parse(cls, text: str) -> UnitFile:
        doc = cls()
        current: Section | None = None
        for joined, raws, at_end in _logical_lines(text):
            line = joined.strip(_WS)
            if not line or line[0] in _COMMENTS:
                continue
            if line.startswith("[") and line.endswith("]"):
                current = Section(line[1:-1].strip(_WS))
                doc.sections.append(current)
            elif "=" in line and current is not None:
                key, value = (part.strip(_WS) for part in line.split("=", 1))
                current.entries.append((key, _carried(key, value, raws, at_end)))
        return doc

    def section(self, name: str) -> Section | None:
        for section in self.sections:
            if section.name == name:
                return section
        return None

    def get(self, section: str, key: str) -> str | None:
        found = None
        for s in self.sections:
            if s.name == section:
                found = s.get(key) or found
        return found

    def add(self, name: str) -> Section:
        section = Section(name)
        self.sections.append(section)
        return section

    def render(self, header: str = "") -> str:
        parts = [header] if header else []
        for section in self.sections:
            body = "".join(f"{k}={v.raw if isinstance(v, Continued) else v}\n"
                           for k, v in section.entries)  # fmt: skip
            parts.append(f"[{section.name}]\n{body}")
        return "\n".join(parts)


def _carried(key: str, value: str, raws: list[str], at_end: bool) -> str:
    """``value``, as a `Continued` holding its lines as written when it spans several.

    The written form is kept only when reading ``KEY=<it>`` back gives the same value and it
    cannot reach into a following line: a file ending in a backslash (the continuation has
    nothing to join) is written on one line instead.
    """
    if len(raws) < 2 or at_end:
        return value
    written = "\n".join(raws)
    raw = written.split("=", 1)[1] if "=" in written else ""
    again = _logical_lines(f"{key}={raw}\n")
    if len(again) != 1 or again[0][2]:
        return value
    line = again[0][0].strip(_WS)
    if "=" not in line or line.split("=", 1)[1].strip(_WS) != value:
        return value
    return Continued(value, raw)
