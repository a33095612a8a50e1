"""systemd-style INI files (.network, .netdev): repeated sections and keys kept in order.

``configparser`` cannot read them (``[Address]`` and ``DNS=`` may repeat), so this tiny
reader keeps a list of sections, each a list of (key, value)::

    doc = UnitFile.parse("[Match]\\nName=eth0\\n[Network]\\nDHCP=ipv4\\n")
    doc.get("Network", "DHCP")   # 'ipv4'
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ...errors import InvalidInput

__all__ = ["Section", "UnitFile", "check_value"]


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
        for raw in text.splitlines():
            line = raw.strip()
            if not line or line[0] in "#;":
                continue
            if line.startswith("[") and line.endswith("]"):
                current = Section(line[1:-1].strip())
                doc.sections.append(current)
            elif "=" in line and current is not None:
                key, value = line.split("=", 1)
                current.entries.append((key.strip(), value.strip()))
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
            body = "".join(f"{k}={v}\n" for k, v in section.entries)
            parts.append(f"[{section.name}]\n{body}")
        return "\n".join(parts)
