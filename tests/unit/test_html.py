"""kvmnet.core._html: the shared ``_repr_html_`` builders escape everything they are given."""

from __future__ import annotations

from kvmnet.core import _html


def test_table_escapes_cells_and_caption() -> None:
    out = _html.table(["name", "<h>"], [("<script>", None)], caption="a & b")
    assert "<script>" not in out
    assert "&lt;script&gt;" in out
    assert "&lt;h&gt;" in out
    assert "a &amp; b" in out
    assert "&mdash;" in out  # None renders as a dash, not "None"


def test_table_passes_raw_markup_through() -> None:
    out = _html.table(["mode"], [(_html.badge("bridged"),)])
    assert "<span" in out and ">bridged</span>" in out


def test_empty_table_says_none() -> None:
    assert "(none)" in _html.table(["a", "b"], [])


def test_diff_colours_added_and_removed_lines() -> None:
    out = _html.diff("--- a\n+++ b\n@@ -1 +1 @@\n-<old/>\n+<new/>\n same")
    removed, added = out.index("&lt;old/&gt;"), out.index("&lt;new/&gt;")
    assert "#d62728" in out[:removed]
    assert "#2ca02c" in out[removed:added]
    assert "<old/>" not in out


def test_keyvalues_renders_each_pair() -> None:
    out = _html.keyvalues({"state": "running", "NICs": 2})
    assert ">state</b>" in out and "running" in out and ">2<" in out


def test_escape_matches_the_standard_library() -> None:
    import html

    text = "<a href=\"x\">'Tom' & \"Jerry\"</a> &amp; ünïcödé"
    assert _html.escape(text) == html.escape(text, quote=True)
