"""The one jinja2 environment: escaping rules, strictness, and a lint of the Markdown templates."""

from __future__ import annotations

import re
from importlib import resources

import pytest
from jinja2 import UndefinedError

from reports.environment import (
    MARKDOWN_SAFE_FILTERS,
    environment,
    file_name,
    markdown_block,
    markdown_text,
)

TEMPLATES = resources.files("reports") / "templates"


def test_one_environment_escaping_html_but_not_markdown() -> None:
    env = environment()
    assert env is environment()
    assert (
        env.autoescape("proposal.html.j2")
        and env.autoescape("chart.svg")
        and env.autoescape("x.xml.j2")
    )
    assert not env.autoescape("proposal.md.j2")
    rendered = env.from_string("{{ x }}").render(x="<b>")  # strings default to escaping
    assert rendered == "&lt;b&gt;"


def test_undefined_values_are_errors_not_blanks() -> None:
    with pytest.raises(UndefinedError):
        environment().get_template("backtest.md.j2").render(
            ctx={}, charts=(), title="t", generated_at="g"
        )


def test_every_markdown_interpolation_passes_a_neutralising_filter() -> None:
    """Markdown has no autoescape: an interpolation without md/number/… could inject."""
    pattern = re.compile(r"\{\{(.*?)\}\}", re.S)
    offenders = []
    for path in TEMPLATES.iterdir():
        if not path.name.endswith(".md.j2"):
            continue
        for expression in pattern.findall(path.read_text()):
            if re.match(r"\s*m\.\w+\(", expression):
                continue  # a macro of _macros.md.j2, whose own interpolations are checked here too
            last = expression.strip().split("|")
            name = re.match(r"\s*(\w+)", last[-1]).group(1) if len(last) > 1 else None
            if name not in MARKDOWN_SAFE_FILTERS:
                offenders.append(f"{path.name}: {{{{{expression}}}}}")
    assert offenders == []


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("<script>alert(1)</script>", "&lt;script&gt;alert(1)&lt;/script&gt;"),
        ("a & b", "a &amp; b"),
        (
            "*bold* _it_ `code` [x](y) a|b ~s~ \\",
            "\\*bold\\* \\_it\\_ \\`code\\` \\[x\\](y) a\\|b \\~s\\~ \\\\",
        ),
        ("# heading", "\\# heading"),
        ("- item", "\\- item"),
        ("+ item", "\\+ item"),
        ("3. third", "3\\. third"),
        ("two\nlines", "two lines"),
        ("{{ 7*7 }}", "{{ 7\\*7 }}"),
        ("2022-01-01 .. 2022-12-31", "2022-01-01 .. 2022-12-31"),
    ],
)
def test_markdown_text_neutralises(text, expected) -> None:
    assert markdown_text(text) == expected


def test_markdown_block_keeps_paragraphs_and_escapes_each_line() -> None:
    assert markdown_block("# one\n\n- two\nthree") == "\\# one\n\n\\- two\nthree"


def test_only_generated_file_names_become_links() -> None:
    assert file_name("margin-vs-loss.png") == "margin-vs-loss.png"
    with pytest.raises(ValueError, match="not a report file name"):
        file_name("../etc/passwd")
    with pytest.raises(ValueError):
        file_name("javascript:alert(1)")
