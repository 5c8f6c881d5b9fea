"""Text from outside — titles, reasons, asset and file names — made inert for terminals and
reports.

Terminal escape sequences (ANSI colour and cursor codes, OSC hyperlinks and window titles),
other control characters, Unicode bidirectional overrides (which reorder what a reader sees:
``gnp.exe`` shown for ``exe.png``) and zero-width characters (which hide differences between
two names that look the same) are removed from what the command line prints, and shown as
visible ``\\uXXXX`` escapes in reports, so a reader sees that something was there.
"""

from __future__ import annotations

import re

# ESC-introduced sequences: CSI (ESC [ … final), OSC (ESC ] … BEL or ESC \), and two-byte ones
_ESCAPES = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?|\x1b[@-_]?")
_INVISIBLE = (
    "\u200b-\u200f"  # zero width space, joiners, LRM, RLM
    "\u202a-\u202e"  # bidi embeddings and overrides
    "\u2060-\u2064\u2066-\u2069"  # word joiner, invisible operators, bidi isolates
    "\ufeff"  # zero width no-break space
)
_CONTROLS = re.compile(f"[\\x00-\\x08\\x0b-\\x1f\\x7f-\\x9f{_INVISIBLE}]")


def printable(value: object) -> str:
    """``value`` for a terminal: escape sequences and invisible or control characters
    removed (newlines and tabs kept)."""
    return _CONTROLS.sub("", _ESCAPES.sub("", str(value)))


def neutral(value: object) -> str:
    """``value`` for a report: escape sequences and invisible or control characters shown as
    ``\\uXXXX`` (newlines and tabs kept)."""
    text = _ESCAPES.sub(lambda m: "".join(f"\\u{ord(c):04x}" for c in m.group(0)), str(value))
    return _CONTROLS.sub(lambda m: f"\\u{ord(m.group(0)):04x}", text)
