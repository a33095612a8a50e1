"""Shell-variable files (RHEL ifcfg-*): parse without running them, edit in place, quote safely.

initscripts *source* these files with bash, and NetworkManager's ifcfg-rh plugin parses them
with its own shell-like reader, so a value must mean the same text to both and must never turn
into shell code. Unknown keys, comments and blank lines survive an edit in their order::

    doc = ShellVars.parse('DEVICE=eth0\\n# keep me\\nBOOTPROTO=dhcp\\n')
    doc.set("BRIDGE", "br0")
    doc.remove("BOOTPROTO")
    doc.render()  # 'DEVICE=eth0\\n# keep me\\nBRIDGE=br0\\n'
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

from ...errors import InvalidInput

__all__ = ["Line", "ShellVars", "quote", "unquote"]

_ASSIGN = re.compile(
    r"^(?P<indent>[ \t]*)(?P<export>export\s+)?(?P<key>[A-Za-z_][A-Za-z0-9_]*)=(?P<rest>.*)$",
    re.S,
)
_BARE_SAFE = re.compile(r"^[A-Za-z0-9_./:@%+,=-]+$")
# Inside double quotes bash still expands these; a backslash makes each literal.
_DQ_SPECIAL = re.compile(r'([\\"$`])')


def quote(value: str) -> str:
    """Return ``value`` as a shell word that bash and ifcfg-rh both read back verbatim.

    >>> quote("10.0.0.1"), quote("my nic"), quote("$(reboot)")
    ('10.0.0.1', '"my nic"', '"\\\\$(reboot)"')
    """
    if "\n" in value or "\r" in value or "\0" in value:
        raise InvalidInput(
            f"ifcfg value {value!r} contains a line break or NUL; "
            "ifcfg files hold one value per line: remove it"
        )
    if value and _BARE_SAFE.match(value):
        return value
    return '"' + _DQ_SPECIAL.sub(r"\\\1", value) + '"'


def unquote(raw: str) -> str:
    """Read one shell word (the right-hand side of ``KEY=``) without expanding anything.

    Handles bare words with backslashes, '...' and "..." (with \\ escapes), $'...' (ANSI-C),
    concatenations like ``a"b c"'d'``, and a trailing ``# comment`` after whitespace. An
    unquoted CR ends the word (``eth0\\r`` is ``eth0``, as NetworkManager's ifcfg-rh reads a
    line of a CRLF file; bash would keep the CR).
    ``$VAR``/``$(cmd)`` outside single quotes are kept as literal text, never run.
    """
    out: list[str] = []
    i, n = 0, len(raw)
    while i < n:
        c = raw[i]
        if c in " \t\r":
            # End of the word: what follows is a comment or junk. A CR too, as
            # NetworkManager's ifcfg-rh reads it: the line end of a file saved with CRLF.
            break
        if c == "'":
            end = raw.find("'", i + 1)
            if end < 0:
                raise InvalidInput(f"unterminated single quote in {raw!r}")
            out.append(raw[i + 1 : end])
            i = end + 1
        elif c == "$" and i + 1 < n and raw[i + 1] == "'":
            i = _ansi_c(raw, i + 2, out)
        elif c == '"':
            i += 1
            while True:
                if i >= n:
                    raise InvalidInput(f"unterminated double quote in {raw!r}")
                d = raw[i]
                if d == '"':
                    i += 1
                    break
                if d == "\\" and i + 1 < n and raw[i + 1] in '\\"$`':
                    out.append(raw[i + 1])
                    i += 2
                    continue
                out.append(d)
                i += 1
        elif c == "\\" and i + 1 < n:
            out.append(raw[i + 1])
            i += 2
        else:
            out.append(c)
            i += 1
    return "".join(out)


_ANSI = {
    "n": "\n",
    "t": "\t",
    "r": "\r",
    "\\": "\\",
    "'": "'",
    '"': '"',
    "a": "\a",
    "b": "\b",
    "e": "\x1b",
    "f": "\f",
    "v": "\v",
}


def _ansi_c(raw: str, i: int, out: list[str]) -> int:
    n = len(raw)
    while i < n:
        c = raw[i]
        if c == "'":
            return i + 1
        if c == "\\" and i + 1 < n:
            out.append(_ANSI.get(raw[i + 1], "\\" + raw[i + 1]))
            i += 2
            continue
        out.append(c)
        i += 1
    raise InvalidInput(f"unterminated $'...' quote in {raw!r}")


@dataclass(frozen=True)
class Line:
    """One line of the file: an assignment (``key`` set) or anything else kept verbatim."""

    text: str
    key: str | None = None
    value: str | None = None


class ShellVars:
    """An ifcfg-style file as an ordered list of lines; edits keep everything else intact.

    ``parse(text).render() == text`` for every text: lines are split at the file's line
    end (``newline``: ``\\r\\n`` when every line break of the text is one, as in a file saved
    on Windows, else ``\\n``, a stray ``\\r`` or form feed then staying part of its line) and
    a missing final newline is remembered (``final_newline``), so a file kvmnet edits in place
    comes back byte for byte, and lines it adds end as the others do.

    Args:
        lines: the parsed lines (use `parse` to read a text).
        final_newline: whether the text ends with a newline.
        newline: the line end, ``"\\n"`` or ``"\\r\\n"``.
    """

    def __init__(
        self, lines: list[Line] | None = None, *, final_newline: bool = True, newline: str = "\n"
    ) -> None:
        self.lines: list[Line] = list(lines or [])
        self.final_newline = final_newline
        self.newline = newline

    @classmethod
    def parse(cls, text: str) -> ShellVars:
        """Parse ``text`` without running it. A quoted value may span lines (as in bash):
        it is one `Line` whose ``text`` holds the line breaks.

        Args:
            text: the file's content.

        Returns:
            The parsed file.

        Raises:
            InvalidInput: a value's quoting is unterminated (the line is named).
        """
        lines: list[Line] = []
        # CRLF only when every line break is one: a file mixing both keeps its \r in the
        # lines' text (rendered back as it was), a CRLF file gets CRLF on the lines added.
        newline = "\r\n" if "\r\n" in text and text.count("\n") == text.count("\r\n") else "\n"
        final_newline = text.endswith("\n") or not text
        body = text[: -len(newline)] if text.endswith("\n") else text
        physical = body.split(newline) if text else []
        number = 0
        while number < len(physical):
            start, text_line = number + 1, physical[number]
            number += 1
            while True:
                m = _ASSIGN.match(text_line)
                if m is None:
                    lines.append(Line(text_line))
                    break
                try:
                    value = unquote(m.group("rest"))
                except InvalidInput as exc:
                    # A quote left open continues on the next line, as bash reads it.
                    if "unterminated" in str(exc) and number < len(physical):
                        text_line += newline + physical[number]
                        number += 1
                        continue
                    raise InvalidInput(f"line {start}: {exc}: fix the quoting in the file") from exc
                lines.append(Line(text_line, m.group("key"), value))
                break
        return cls(lines, final_newline=final_newline, newline=newline)

    def __iter__(self) -> Iterator[tuple[str, str]]:
        for line in self.lines:
            if line.key is not None and line.value is not None:
                yield line.key, line.value

    def keys(self) -> list[str]:
        """The assigned keys, in order (a key assigned twice appears twice).

        Returns:
            The keys.
        """
        return [k for k, _ in self]

    def get(self, key: str, default: str | None = None) -> str | None:
        """The value the shell would end with: the last assignment wins.

        Args:
            key: the variable's name.
            default: what to return when it is not assigned.

        Returns:
            The value, else ``default``.
        """
        found = default
        for k, v in self:
            if k == key:
                found = v
        return found

    def __contains__(self, key: object) -> bool:
        return any(k == key for k, _ in self)

    def set(self, key: str, value: str) -> None:
        """Replace the first assignment in place (dropping later duplicates) or append one.

        Args:
            key: the variable's name.
            value: its new value (quoted when written if it needs it).
        """
        new = Line(f"{key}={quote(value)}", key, value)
        kept: list[Line] = []
        placed = False
        for line in self.lines:
            if line.key == key:
                if not placed:
                    kept.append(new)
                    placed = True
                continue
            kept.append(line)
        if not placed:
            kept.append(new)
        self.lines = kept

    def remove(self, key: str) -> str | None:
        """Drop every assignment of ``key``.

        Args:
            key: the variable's name.

        Returns:
            The value it had, None if it was not assigned.
        """
        old = self.get(key)
        self.lines = [line for line in self.lines if line.key != key]
        return old

    def render(self) -> str:
        """The file's text: every line as it was read or set.

        Returns:
            The text.
        """
        text = self.newline.join(line.text for line in self.lines)
        return text + self.newline if self.lines and self.final_newline else text
