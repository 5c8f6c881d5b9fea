"""The one jinja2 environment every report renders through.

* Autoescape is on for ``.html``, ``.xml`` and ``.svg`` templates (``select_autoescape``), so
  any text from outside — asset names, proposal titles, motivations — is HTML-escaped there.
* Markdown has no autoescaping: every ``{{ … }}`` in a ``.md`` template ends in one of the
  :data:`MARKDOWN_SAFE_FILTERS`, and ``md`` neutralises Markdown and HTML control characters.
  A test reads the Markdown templates and fails on an interpolation without one.
* ``StrictUndefined``: a missing value is an error, never an empty cell.
* Text is data, never a template: nothing here renders a user string as jinja source, so a
  title ``{{ 7*7 }}`` stays those seven characters.
* Every interpolated string passes :func:`reports.text.neutral`: terminal escapes, control
  characters, bidirectional overrides and zero-width characters show as ``\\uXXXX``.
"""

from __future__ import annotations

import functools
import math
import re
from typing import SupportsFloat

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from markupsafe import Markup

from reports.text import neutral

# characters with an inline meaning in CommonMark (and GitHub/Discourse extensions) …
_MD_INLINE = re.compile(r"([\\`*_\[\]|~])")
# … and those that only mean something at the start of a line (headings, lists, quotes)
_MD_LINE_START = re.compile(r"^(\s*)([#+\-=])")
_MD_ORDERED = re.compile(r"^(\s*\d+)([.)])")


def markdown_text(value: object) -> str:
    """``value`` as inert Markdown text: HTML's ``& < >`` become entities (forums render raw
    HTML), Markdown's inline control characters are backslash-escaped, so are those that would
    start a heading, list or quote, and line breaks become spaces (a cell or heading stays one
    line). Braces are kept: text is never a template."""
    text = re.sub(r"[\r\n\t]+", " ", str(value))
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    text = _MD_INLINE.sub(r"\\\1", text)
    text = _MD_LINE_START.sub(lambda m: m.group(1) + "\\" + m.group(2), text)
    return _MD_ORDERED.sub(lambda m: m.group(1) + "\\" + m.group(2), text)


def markdown_block(value: object) -> str:
    """Multi-line text (a motivation) as inert Markdown paragraphs: each line escaped, blank
    lines kept."""
    lines = str(value).replace("\r\n", "\n").split("\n")
    return "\n".join(markdown_text(line) if line.strip() else "" for line in lines).strip("\n")


def number(value: object, digits: int = 4) -> str:
    """Numbers as the report prints them (and as the tests re-format them): ``digits``
    significant figures, thousands separated; ``-`` for none."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if value == 0:
            return "0"
        if abs(value) >= 10**digits:
            return f"{value:,.0f}"
        return f"{value:,.{digits}g}"
    return str(value)


def percent(value: SupportsFloat | None, digits: int = 2) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    return f"{100 * float(value):.{digits}f} %"


def usd(value: SupportsFloat | None) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    return f"${float(value):,.0f}"


def pvalue(value: SupportsFloat | None) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    return f"{float(value):.3f}"


def short(value: object, n: int = 12) -> str:
    return str(value)[:n]


def file_name(value: object) -> str:
    """A generated file name (a chart's PNG) for a Markdown link; anything else is refused."""
    text = str(value)
    if not re.fullmatch(r"[a-z0-9][a-z0-9.-]*", text):
        raise ValueError(f"not a report file name: {text!r}")
    return text


def inline_svg(svg: str) -> Markup:
    """A chart's SVG, produced by :mod:`reports.charts` (never user input), marked safe."""
    return Markup(svg)


MARKDOWN_SAFE_FILTERS = ("md", "md_block", "number", "percent", "usd", "pvalue", "short_md", "file")


_ESCAPE_BY_EXTENSION = select_autoescape(
    enabled_extensions=("html", "xml", "svg"), default_for_string=True
)


def _autoescape(template_name: str | None) -> bool:
    """HTML, XML and SVG templates escape; ``report.html.j2`` counts as ``.html`` (the ``.j2``
    suffix only says it is a template)."""
    if template_name is not None and template_name.endswith(".j2"):
        template_name = template_name[: -len(".j2")]
    return _ESCAPE_BY_EXTENSION(template_name)


def _finalize(value: object) -> object:
    """Applied to every ``{{ … }}`` before escaping: text is made inert (:mod:`reports.text`);
    markup we produced ourselves (the charts' SVG) passes untouched."""
    if isinstance(value, Markup) or not isinstance(value, str):
        return value
    return neutral(value)


@functools.cache
def environment() -> Environment:
    env = Environment(
        loader=PackageLoader("reports", "templates"),
        autoescape=_autoescape,
        finalize=_finalize,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters.update(
        md=markdown_text,
        md_block=markdown_block,
        number=number,
        percent=percent,
        usd=usd,
        pvalue=pvalue,
        short=short,
        short_md=lambda v, n=12: markdown_text(short(v, n)),
        svg=inline_svg,
        file=file_name,
    )
    return env
