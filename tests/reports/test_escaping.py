"""Hostile text — asset names, titles, authors, motivations, vote reasons — is escaped in HTML
and neutralised in Markdown (issue 7, Must show)."""

from __future__ import annotations

import re
from dataclasses import replace
from html.parser import HTMLParser

import fixtures
import pytest

from reports.render import render

HOSTILE = fixtures.HOSTILE


class _Collector(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.attributes: list[tuple[str, str, str]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self.attributes += [(tag, k, v or "") for k, v in attrs]

    def handle_data(self, data):
        self.text.append(data)


@pytest.fixture(scope="module")
def hostile():
    proposal = replace(
        fixtures.proposal(
            title=HOSTILE, motivation=f"{HOSTILE}\n# not a heading\n1. not a list", author=HOSTILE
        ),
        votes=[
            {
                "member": "alice",
                "decision": "reject",
                "at": "2023-03-02T10:00:00+00:00",
                "reason": HOSTILE,
            }
        ],
    )
    calibration = fixtures.calibration(asset_name=HOSTILE)
    return render(fixtures.context(proposal=proposal, calibration=calibration))


def test_html_escapes_everything_from_outside(hostile) -> None:
    parser = _Collector()
    parser.feed(hostile.html)
    assert "script" not in parser.tags and "a" not in parser.tags and "link" not in parser.tags
    assert parser.tags.count("b") == 0
    text = "".join(parser.text)
    assert (
        text.count("<script>alert(1)</script>") >= 4
    )  # title, heading, author, motivation, asset, reason
    assert "{{ 7*7 }}" in text and "*bold*" in text
    assert "&lt;script&gt;" in hostile.html


def test_html_has_no_external_address(hostile) -> None:
    parser = _Collector()
    parser.feed(hostile.html)
    for tag, name, value in parser.attributes:
        assert name not in (
            "src",
            "href",
            "srcset",
            "action",
            "xmlns",
        ) or not value.strip().lower().startswith(("http", "//", "javascript", "data:text/html")), (
            tag,
            name,
            value,
        )
    assert "@import" not in hostile.html
    assert not re.search(r"url\((?!#)", hostile.html)  # only the charts' own clip paths (url(#…))
    assert "<script" not in hostile.html.lower()


def test_markdown_neutralises_everything_from_outside(hostile) -> None:
    md = hostile.markdown
    assert "<script" not in md and "<b>" not in md
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in md
    assert (
        "{{ 7\\*7 }}" in md
        and "\\*bold\\*" in md
        and "\\_it\\_" in md
        and "\\[x\\](http://example.com)" in md
    )
    assert "\\# not a heading" in md and "1\\. not a list" in md
    headings = [line for line in md.splitlines() if line.startswith("#")]
    assert all(
        not h.lstrip("#").strip().startswith("&lt;script") or h.startswith("# ") for h in headings
    )
    assert len([h for h in headings if h.startswith("# ")]) == 1  # only the report's own title
    table_rows = [line for line in md.splitlines() if line.startswith("|")]
    for row in table_rows:  # a | inside text would split a cell
        cells = row.replace("\\|", "").count("|")
        header = table_rows[0]
        assert cells >= 2 and header


def test_jinja_syntax_in_text_is_never_evaluated(hostile) -> None:
    assert "{{ 7*7 }}" in hostile.html
    assert "{{ 7\\*7 }}" in hostile.markdown
    assert hostile.payload["title"] == HOSTILE
