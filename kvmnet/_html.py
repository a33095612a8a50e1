"""Small HTML builders for ``_repr_html_`` (Jupyter): escaping, tables, a coloured diff.

Pure functions of strings, no dependencies, so any kvmnet object can render itself::

    from kvmnet import _html

    def _repr_html_(self) -> str:
        return _html.table(["MAC", "mode"], [(i.mac, i.mode) for i in self.interfaces],
                           caption=f"Domain {self.name!r}")

Every value is escaped here; callers pass plain text (or :class:`Raw` for markup they built
with these helpers). Styles are inline because notebooks strip ``<style>`` blocks in some
viewers (GitHub, nbviewer).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

__all__ = [
    "Raw",
    "badge",
    "code",
    "diff",
    "escape",
    "keyvalues",
    "section",
    "table",
]

# Colours readable on both light and dark notebook themes.
_MODE_COLOURS = {
    "nat": "#1f77b4",
    "bridged": "#2ca02c",
    "isolated": "#7f7f7f",
    "routed": "#9467bd",
    "direct": "#ff7f0e",
    "other": "#8c564b",
}
_TABLE = "border-collapse:collapse;font-family:monospace;font-size:90%"
_CELL = "border:1px solid #8888;padding:2px 8px;text-align:left;vertical-align:top"
_CAPTION = "caption-side:top;text-align:left;font-weight:bold;padding:2px 0"


@dataclass(frozen=True)
class Raw:
    """Markup that is already safe (built by these helpers); passed through unescaped."""

    markup: str

    def __str__(self) -> str:
        return self.markup


# html.escape's table, without importing html (and its 2,000-entry html.entities) into every
# command-line start that loads a module with a _repr_html_.
_ESCAPES = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#x27;"})


def escape(value: object) -> str:
    """``value`` as HTML text; None becomes an em dash, :class:`Raw` passes through."""
    if isinstance(value, Raw):
        return value.markup
    if value is None:
        return "&mdash;"
    return str(value).translate(_ESCAPES)


def badge(text: object) -> Raw:
    """A small coloured label, coloured by mode when ``text`` is one (``nat``, ``bridged``...)."""
    label = str(text)
    colour = _MODE_COLOURS.get(label.lower(), "#555")
    style = f"background:{colour};color:#fff;border-radius:3px;padding:0 5px;font-size:85%"
    return Raw(f'<span style="{style}">{escape(label)}</span>')


def code(text: object) -> Raw:
    """Inline monospace text."""
    return Raw(f"<code>{escape(text)}</code>")


def table(
    headers: Sequence[str],
    rows: Iterable[Sequence[object]],
    *,
    caption: str | None = None,
    empty: str = "(none)",
) -> str:
    """An HTML table; cells are escaped unless they are :class:`Raw`."""
    head = "".join(f'<th style="{_CELL}">{escape(h)}</th>' for h in headers)
    body = [
        "<tr>" + "".join(f'<td style="{_CELL}">{escape(cell)}</td>' for cell in row) + "</tr>"
        for row in rows
    ]
    if not body:
        body = [
            f'<tr><td style="{_CELL}" colspan="{max(len(headers), 1)}">{escape(empty)}</td></tr>'
        ]
    cap = f'<caption style="{_CAPTION}">{escape(caption)}</caption>' if caption else ""
    rows_html = "".join(body)
    return (
        f'<table style="{_TABLE}">{cap}<thead><tr>{head}</tr></thead>'
        f"<tbody>{rows_html}</tbody></table>"
    )


def keyvalues(
    pairs: Mapping[str, object] | Iterable[tuple[str, object]], *, caption: str | None = None
) -> str:
    """A two-column table of names and values (an object's facts)."""
    items = pairs.items() if isinstance(pairs, Mapping) else pairs
    return table(["", ""], [(Raw(f"<b>{escape(k)}</b>"), v) for k, v in items], caption=caption)


def diff(text: str, *, caption: str | None = None) -> str:
    """A unified diff as a ``<pre>`` block: additions green, removals red, hunks blue."""
    lines = []
    for line in text.splitlines():
        if line.startswith(("+++", "---")):
            style = "font-weight:bold"
        elif line.startswith("+"):
            style = "background:#2ca02c33;color:inherit"
        elif line.startswith("-"):
            style = "background:#d6272833;color:inherit"
        elif line.startswith("@@"):
            style = "color:#1f77b4"
        else:
            style = ""
        attr = f' style="{style}"' if style else ""
        lines.append(f"<span{attr}>{escape(line)}</span>")
    body = "\n".join(lines) if lines else "(no change)"
    cap = f'<div style="{_CAPTION}">{escape(caption)}</div>' if caption else ""
    return f'{cap}<pre style="font-size:85%;line-height:1.3">{body}</pre>'


def section(title: str, *parts: str) -> str:
    """A titled block holding other rendered parts (tables, diffs)."""
    return f'<div><div style="{_CAPTION}">{escape(title)}</div>{"".join(parts)}</div>'
