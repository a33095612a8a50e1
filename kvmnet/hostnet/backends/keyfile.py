"""NetworkManager keyfiles (``*.nmconnection``, GLib key-file syntax): read and write.

One value per key and section, so an ordered ``{section: {key: raw value}}`` is enough. Raw
values copied from an existing keyfile stay escaped as they were; new ones go through
`escape`::

    kf = Keyfile.parse(text)
    kf.get("ipv4", "method")          # 'auto'
    kf.set("connection", "id", "br0")
    kf.render()
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ...errors import InvalidInput

__all__ = ["Keyfile", "escape", "mac_value", "split_list"]


def escape(value: str) -> str:
    """GLib key-file escaping: backslash, line breaks, tabs, a leading space."""
    if "\0" in value:
        raise InvalidInput(f"keyfile value {value!r} contains NUL: remove it")
    out = value.replace("\\", "\\\\").replace("\n", "\\n").replace("\r", "\\r").replace("\t", "\\t")
    return "\\s" + out[1:] if out.startswith(" ") else out


@dataclass
class Keyfile:
    sections: dict[str, dict[str, str]] = field(default_factory=dict)

    @classmethod
    def parse(cls, text: str) -> Keyfile:
        kf = cls()
        current: dict[str, str] | None = None
        for raw in text.splitlines():
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            if line.startswith("[") and line.endswith("]"):
                current = kf.sections.setdefault(line[1:-1], {})
            elif "=" in line and current is not None:
                key, value = line.split("=", 1)
                current[key.strip()] = value.lstrip()
        return kf

    def get(self, section: str, key: str) -> str | None:
        return self.sections.get(section, {}).get(key)

    def set(self, section: str, key: str, value: str) -> None:
        self.sections.setdefault(section, {})[key] = escape(value)

    def set_raw(self, section: str, key: str, raw: str) -> None:
        self.sections.setdefault(section, {})[key] = raw

    def render(self, header: str = "") -> str:
        parts = [header] if header else []
        for name, entries in self.sections.items():
            body = "".join(f"{k}={v}\n" for k, v in entries.items())
            parts.append(f"[{name}]\n{body}")
        return "\n".join(parts)


def split_list(raw: str) -> list[str]:
    """A keyfile string list (``a;b\\;c;``) as its elements, unescaped ``\\;``."""
    items, cur, i = [], [], 0
    while i < len(raw):
        c = raw[i]
        if c == "\\" and i + 1 < len(raw):
            cur.append(raw[i + 1] if raw[i + 1] in ";," else c + raw[i + 1])
            i += 2
            continue
        if c in ";,":
            items.append("".join(cur))
            cur = []
        else:
            cur.append(c)
        i += 1
    items.append("".join(cur))
    return [item.strip() for item in items if item.strip()]


def mac_value(raw: str) -> str:
    """A keyfile MAC in either form: ``00:11:AA:..`` or the old ``0;17;170;...;`` bytes."""
    if ";" in raw:
        parts = [p for p in raw.split(";") if p.strip()]
        try:
            return ":".join(f"{int(p):02x}" for p in parts)
        except ValueError:
            return raw.lower()
    return raw.strip().lower()
