"""Small HTML builders for ``_repr_html_`` (Jupyter): escaping, tables, code, a coloured diff.

Pure functions of strings, no dependencies, so any kvmnet object can render itself::

    from kvmnet import _html

    def _repr_html_(self) -> str:
        return _html.table(["MAC", "mode"], [(i.mac, i.mode) for i in self.interfaces],
                           caption=f"Domain {self.name!r}")

Every value is escaped here; callers pass plain text (or `Raw` for markup they built
with these helpers). Styles are inline because notebooks strip ``<style>`` blocks in some
viewers (GitHub, nbviewer). Three rules keep the views readable everywhere:

- Left-aligned: JupyterLab's stylesheet right-aligns table cells and centres tables, so every
  table, cell and header says ``text-align:left`` (and the table ``margin:0``) itself.
- Monospace for code (commands, file contents, paths, MACs): JupyterLab's code font through
  ``--jp-code-font-family``, with a fallback stack elsewhere. Not the bare ``monospace``
  keyword alone, which browsers shrink to 13px.
- Light and dark themes: text colour is always inherited; colour comes only from translucent
  tints (``#rrggbbaa`` backgrounds and borders) that show on either background, and from
  badges whose white text sits on their own dark-enough fill (contrast >= 4.5).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

__all__ = [
    "MONO",
    "Raw",
    "badge",
    "bullets",
    "callout",
    "code",
    "codeblock",
    "diff",
    "escape",
    "keyvalues",
    "section",
    "table",
]

# Badge fills: the hues of kvmnet.topology's mode colours, darkened where needed so white
# text on them has a contrast of at least 4.5 (WCAG AA) whatever the page behind them.
_MODE_COLOURS = {
    "nat": "#1f6fb4",
    "bridged": "#1e7b1e",
    "isolated": "#5f5f5f",
    "routed": "#7647a3",
    "direct": "#b04f00",
    "other": "#8c564b",
}
# Link states (ip's operstate) and outcomes, in the same darkened hues.
_STATE_COLOURS = {
    "up": "#1e7b1e",
    "ok": "#1e7b1e",
    "down": "#c0392b",
    "failed": "#c0392b",
    "lowerlayerdown": "#b04f00",
    "dormant": "#b04f00",
}
_NEUTRAL = "#555555"

#: The font of code: the notebook's own code font where there is one.
MONO = (
    "font-family:var(--jp-code-font-family,ui-monospace,SFMono-Regular,Menlo,Consolas,"
    "'DejaVu Sans Mono','Liberation Mono',monospace)"
)
_TABLE = (
    f"border-collapse:collapse;{MONO};font-size:90%;margin:0 0 6px 0;text-align:left;"
    "table-layout:auto;width:auto"
)
_CELL = (
    "border:1px solid #8888;padding:2px 8px;text-align:left;vertical-align:top;white-space:normal"
)
_HEAD = _CELL + ";font-weight:bold;background:#8882"
_CAPTION = "text-align:left;font-weight:bold;padding:0;margin:6px 0 2px 0"
_PRE = (
    f"{MONO};font-size:85%;line-height:1.35;text-align:left;margin:2px 0 6px 0;padding:4px 6px;"
    "white-space:pre;overflow-x:auto;border:1px solid #8884;border-radius:3px;color:inherit"
)
# Diff line tints: translucent, so the line's text keeps the theme's own colour.
_ADDED = "background:#2ca02c40"
_REMOVED = "background:#d6272840"
_HUNK = "background:#1f77b430;font-style:italic"
_CALLOUTS = {
    "note": "#1f77b4",
    "warning": "#ff7f0e",
    "error": "#d62728",
    "ok": "#2ca02c",
}


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
    """``value`` as HTML text.

    Args:
        value: Any value; ``str()`` of it is escaped.

    Returns:
        The escaped text; None becomes an em dash, `Raw` passes through unchanged.
    """
    if isinstance(value, Raw):
        return value.markup
    if value is None:
        return "&mdash;"
    return str(value).translate(_ESCAPES)


def badge(text: object) -> Raw:
    """A small coloured label, coloured by mode (``nat``, ``bridged``...) or state (``up``...).

    Args:
        text: The label.

    Returns:
        The label as markup: white bold text on a fill dark enough for both themes.
    """
    label = str(text)
    key = label.lower()
    colour = _MODE_COLOURS.get(key) or _STATE_COLOURS.get(key, _NEUTRAL)
    style = (
        f"background:{colour};color:#fff;border-radius:3px;padding:0 5px;font-size:85%;"
        "font-weight:bold;white-space:nowrap"
    )
    return Raw(f'<span style="{style}">{escape(label)}</span>')


def code(text: object) -> Raw:
    """Inline monospace text (a command, a path, a MAC).

    Args:
        text: The code; None renders as an em dash.

    Returns:
        A ``<code>`` element in the code font, wrapping only at spaces.
    """
    style = f"{MONO};font-size:95%;background:none;color:inherit;padding:0;white-space:pre-wrap"
    return Raw(f'<code style="{style}">{escape(text)}</code>')


def codeblock(text: str, *, caption: str | None = None) -> str:
    """A ``<pre>`` block of code or file content, in the code font, left-aligned.

    Args:
        text: The lines to show as they are.
        caption: A bold title above the block.

    Returns:
        The block's markup.
    """
    cap = f'<div style="{_CAPTION}">{escape(caption)}</div>' if caption else ""
    return f'{cap}<pre style="{_PRE}">{escape(text)}</pre>'


def table(
    headers: Sequence[str],
    rows: Iterable[Sequence[object]],
    *,
    caption: str | None = None,
    empty: str = "(none)",
) -> str:
    """An HTML table, left-aligned, in the code font; cells are escaped unless `Raw`.

    Args:
        headers: Column titles; all empty: no header row.
        rows: One sequence of cells per row.
        caption: A bold title above the table.
        empty: What the one cell of a table without rows says.

    Returns:
        The table's markup.
    """
    head = ""
    if any(headers):
        cells = "".join(f'<th style="{_HEAD}">{escape(h)}</th>' for h in headers)
        head = f"<thead><tr>{cells}</tr></thead>"
    body = [
        "<tr>" + "".join(f'<td style="{_CELL}">{escape(cell)}</td>' for cell in row) + "</tr>"
        for row in rows
    ]
    if not body:
        body = [
            f'<tr><td style="{_CELL}" colspan="{max(len(headers), 1)}">{escape(empty)}</td></tr>'
        ]
    # The title sits above the table, not in a <caption>: a caption wraps at the table's width.
    cap = f'<div style="{_CAPTION}">{escape(caption)}</div>' if caption else ""
    rows_html = "".join(body)
    return f'{cap}<table style="{_TABLE}">{head}<tbody>{rows_html}</tbody></table>'


def keyvalues(
    pairs: Mapping[str, object] | Iterable[tuple[str, object]], *, caption: str | None = None
) -> str:
    """A two-column table of names and values (an object's facts), without a header row.

    Args:
        pairs: Name -> value, in order; values are escaped unless `Raw`.
        caption: A bold title above the table.

    Returns:
        The table's markup.
    """
    items = pairs.items() if isinstance(pairs, Mapping) else pairs
    # The names never wrap: a long value (a list of MACs) would squeeze them to one word a line.
    names = ((Raw(f'<b style="white-space:nowrap">{escape(k)}</b>'), v) for k, v in items)
    return table(["", ""], names, caption=caption)


def diff(text: str, *, caption: str | None = None) -> str:
    """A unified diff as a ``<pre>`` block: additions green, removals red, hunks blue.

    The tints are translucent backgrounds, so the text keeps the theme's colour (readable on
    light and dark); the ``+``/``-`` stay in front of each line for colour-blind readers.

    Args:
        text: A unified diff (``difflib.unified_diff`` output); empty: "(no change)".
        caption: A bold title above the block.

    Returns:
        The block's markup.
    """
    lines = []
    for line in text.splitlines():
        if line.startswith(("+++", "---")):
            style = "font-weight:bold"
        elif line.startswith("+"):
            style = _ADDED
        elif line.startswith("-"):
            style = _REMOVED
        elif line.startswith("@@"):
            style = _HUNK
        else:
            style = ""
        # One block per line, so a tint spans the width; a space keeps an empty line's height.
        lines.append(f'<span style="display:block;{style}">{escape(line) or " "}</span>')
    body = "".join(lines) if lines else "(no change)"
    cap = f'<div style="{_CAPTION}">{escape(caption)}</div>' if caption else ""
    return f'{cap}<pre style="{_PRE}">{body}</pre>'


def callout(
    text: object,
    *,
    kind: Literal["note", "warning", "error", "ok"] = "note",
    label: str | None = None,
) -> str:
    """A one-paragraph message with a coloured bar: a plan's notes and warnings.

    Args:
        text: The message (escaped unless `Raw`).
        kind: Picks the bar's colour: blue note, orange warning, red error, green ok.
        label: A bold word in front ("warning:"); default: none for notes, ``kind`` otherwise.

    Returns:
        The paragraph's markup.
    """
    colour = _CALLOUTS[kind]
    word = label if label is not None else ("" if kind == "note" else f"{kind}:")
    bold = f"<b>{escape(word)}</b> " if word else ""
    style = (
        f"border-left:4px solid {colour};background:{colour}1f;padding:2px 8px;margin:3px 0;"
        "text-align:left;color:inherit"
    )
    return f'<div style="{style}">{bold}{escape(text)}</div>'


def bullets(items: Iterable[object], *, empty: str = "(none)") -> str:
    """A left-aligned bullet list; items are escaped unless `Raw`.

    Args:
        items: The list's entries.
        empty: What an empty list says instead.

    Returns:
        The list's markup.
    """
    entries = "".join(f'<li style="text-align:left">{escape(i)}</li>' for i in items)
    if not entries:
        return f"<div>{escape(empty)}</div>"
    return f'<ul style="margin:2px 0 6px 0;padding-left:22px;text-align:left">{entries}</ul>'


def section(title: str, *parts: str, nested: bool = False) -> str:
    """A titled block holding other rendered parts (tables, diffs).

    Args:
        title: The bold heading (escaped); empty: no heading.
        *parts: Markup built by these helpers, in order.
        nested: Indent the parts behind a thin bar (a part of a larger view).

    Returns:
        The block's markup, left-aligned.
    """
    head = f'<div style="{_CAPTION}">{escape(title)}</div>' if title else ""
    body = "".join(parts)
    if nested:
        body = (
            f'<div style="border-left:2px solid #8886;padding-left:10px;margin:2px 0">{body}</div>'
        )
    return f'<div style="text-align:left">{head}{body}</div>'
