"""A libvirt URI as libvirt's own client reads it (pure: no I/O).

kvmnet's host side must act on the machine, user, port and key that libvirt's ssh transport
uses, so it reads the URI with libvirt's rules, not urllib's:

* the syntax is libxml2's ``xmlParseURI`` (RFC 3986 as libxml2 2.9 implements it): what it
  cannot parse, libvirt refuses ("Unable to parse URI"), and so does `parse_uri`;
* user, host and every query name and value are %-decoded (``h%76%32`` is ``hv2``,
  ``user%40corp@`` is the user ``user@corp``); ``+`` stays ``+``; the whole userinfo is the
  user (``a:b@`` logs in as ``a:b``); a decoded NUL ends the string, as in C;
* brackets come off the host only around a name with a ``:`` (libvirt's
  ``virStringStripIPv6Brackets``): ``[2001:db8::5]`` is ``2001:db8::5``, ``[hv2]`` stays;
* no host means no port (libvirt's ``virURIParse`` drops it);
* query parameters as libvirt's ``virURIParseParams`` splits them: at ``&``, or at ``;``
  when no ``&`` follows; ``name`` alone has the value ""; ``=value`` is dropped. Names are
  matched without regard to case and the last one wins (`LibvirtUri.param`).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["LibvirtUri", "parse_uri"]

_ALPHA = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
_DIGIT = frozenset("0123456789")
_HEX = frozenset("0123456789abcdefABCDEF")
_UNRESERVED = _ALPHA | _DIGIT | frozenset("-._~")
_SUB_DELIM = frozenset("!$&'()*+,;=")
_USERINFO = _UNRESERVED | _SUB_DELIM | {":"}
_REG_NAME = _UNRESERVED | _SUB_DELIM
_PCHAR = _UNRESERVED | _SUB_DELIM | {":", "@"}
_QUERY = _PCHAR | {"/", "?"}
_FRAGMENT = _QUERY | {"[", "]"}
_SCHEME = _ALPHA | _DIGIT | frozenset("+-.")


@dataclass(frozen=True)
class LibvirtUri:
    """A libvirt URI's parts as libvirt reads them (see the module docstring).

    Attributes:
        scheme: ``driver[+transport]`` as written.
        server: the host, %-decoded, IPv6 brackets stripped; None when the URI has none.
        user: the userinfo before ``@``, %-decoded; None without ``@``.
        port: the port, 0 when none is given (or no host).
        params: the query's ``(name, value)`` pairs in order, %-decoded.
    """

    scheme: str
    server: str | None
    user: str | None
    port: int
    params: tuple[tuple[str, str], ...]

    def param(self, name: str) -> str | None:
        """The value of query parameter ``name`` as libvirt's remote driver takes it: names
        compared without regard to case, the last one winning.

        Args:
            name: the parameter, e.g. ``"keyfile"``.

        Returns:
            Its value ("" for ``name`` or ``name=``), or None when the URI has none.
        """
        values = self.params_named(name)
        return values[-1] if values else None

    def params_named(self, name: str) -> tuple[str, ...]:
        """Every value given to ``name`` (case-insensitive), in order.

        Args:
            name: the parameter, e.g. ``"no_verify"``.

        Returns:
            The values, possibly none.
        """
        key = name.lower()
        return tuple(v for n, v in self.params if n.lower() == key)


def _run(text: str, i: int, allowed: frozenset[str]) -> int:
    """Where a run of ``allowed`` characters and %HH escapes from ``i`` ends."""
    n = len(text)
    while i < n:
        c = text[i]
        if c in allowed:
            i += 1
        elif c == "%" and i + 2 < n and text[i + 1] in _HEX and text[i + 2] in _HEX:
            i += 3
        else:
            break
    return i


def _unescape(raw: str) -> str:
    """libxml2's ``xmlURIUnescapeString``, then C's view of the result: %HH becomes the byte
    (a malformed % stays as it is), and a NUL ends the string."""
    out = bytearray()
    data = raw.encode("utf-8", "surrogateescape")
    i, n = 0, len(data)
    while i < n:
        if data[i] == 0x25 and i + 2 < n and chr(data[i + 1]) in _HEX and chr(data[i + 2]) in _HEX:
            out.append(int(data[i + 1 : i + 3], 16))
            i += 3
        else:
            out.append(data[i])
            i += 1
    return bytes(out).split(b"\0", 1)[0].decode("utf-8", "surrogateescape")


def _params(query: str) -> tuple[tuple[str, str], ...]:
    """libvirt's ``virURIParseParams`` over the raw query."""
    out: list[tuple[str, str]] = []
    pos, n = 0, len(query)
    while pos < n:
        end = query.find("&", pos)
        if end < 0:
            end = query.find(";", pos)
        if end < 0:
            end = n
        name, eq, value = query[pos:end].partition("=")
        if not eq and name:
            out.append((_unescape(name), ""))  # "name": the value is ""
        elif eq and not value:
            # "name=". For "=" alone libvirt asks libxml2 to unescape 0 bytes, which it reads
            # as "the rest of the string": that rest is the name.
            out.append((_unescape(name or query[pos:]), ""))
        elif eq and name:
            out.append((_unescape(name), _unescape(value)))
        # else: "" ("&&") or "=value", which libvirt drops as CGI.pm does
        pos = end + 1
    return tuple(out)


def parse_uri(text: str) -> LibvirtUri | None:
    """``text`` as libvirt's client parses a URI with a scheme (``driver[+transport]:...``).

    Args:
        text: the URI.

    Returns:
        Its parts, or None where libvirt refuses it ("Unable to parse URI") or it has no
        scheme.
    """
    n = len(text)
    if not n or text[0] not in _ALPHA:
        return None
    i = 1
    while i < n and text[i] in _SCHEME:
        i += 1
    if i >= n or text[i] != ":":
        return None
    scheme, i = text[:i], i + 1
    server: str | None = None
    user: str | None = None
    port = 0
    if text.startswith("//", i):
        i += 2
        end = _run(text, i, _USERINFO)
        if end < n and text[end] == "@":
            # libxml2 unescapes an empty userinfo with length 0, which it reads as "the whole
            # rest of the string": libvirt's user for "//@host/..." is "@host/...".
            user = _unescape(text[i:end] if end > i else text[end:])
            i = end + 1
        start = i
        if i < n and text[i] == "[":
            close = text.find("]", i)
            if close < 0:
                return None
            i = close + 1
        else:
            i = _run(text, i, _REG_NAME)
        server = _unescape(text[start:i]) if i > start else None
        if i < n and text[i] == ":":
            digits = i + 1
            i = digits
            while i < n and text[i] in _DIGIT:
                i += 1
            if i == digits:
                return None  # "host:" with no port
            port = int(text[digits:i])
            if port > 2**31 - 1:
                return None  # libxml2 refuses a port past INT_MAX
        while i < n and text[i] == "/":  # path-abempty: after a host, only "/" segments
            i = _run(text, i + 1, _PCHAR)
    else:
        i = _run(text, i, _PCHAR | {"/"})  # path-absolute, path-rootless or path-empty
    query = ""
    if i < n and text[i] == "?":
        start = i + 1
        i = _run(text, start, _QUERY)
        query = text[start:i]
    if i < n and text[i] == "#":
        i = _run(text, i + 1, _FRAGMENT)
    if i != n:
        return None
    if server is not None and server.startswith("[") and server.endswith("]") and ":" in server:
        server = server[1:-1]
    if not server:
        server, port = None, 0  # virURIParse: a port without a host is none
    return LibvirtUri(scheme=scheme, server=server, user=user, port=port, params=_params(query))
