"""Reuse within a process: what a backtest built once for an input fingerprint, a what-if or a
sweep on the same inputs takes back instead of building again.

Keys are fingerprints of everything a result reads (the market data's SHA-256, the portfolios,
the day, the MPOR), so a hit gives exactly what a rebuild would. Both memos are bounded and
drop their oldest entries first; :func:`clear` empties them (tests, benchmarks).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from typing import Any, Generic, TypeVar

import pandas as pd

from backtesting.coverage import clear_nulls
from backtesting.replay import DayBook, MarketHistory, build_day
from margin_engine.portfolios import Portfolio

__all__ = ["SUMMARIES", "Memo", "build_days", "clear"]

V = TypeVar("V")


class Memo(Generic[V]):
    """A bounded mapping from fingerprints to results, least recently used out first."""

    def __init__(self, size: int) -> None:
        if size < 1:
            raise ValueError(f"a memo holds at least one entry, got size {size}")
        self.size = size
        self._items: OrderedDict[object, V] = OrderedDict()

    def get(self, key: object) -> V | None:
        """The result stored under ``key``, or None."""
        value = self._items.get(key)
        if value is not None:
            self._items.move_to_end(key)
        return value

    def put(self, key: object, value: V) -> V:
        """Store ``value`` under ``key`` and return it."""
        self._items[key] = value
        self._items.move_to_end(key)
        while len(self._items) > self.size:
            self._items.popitem(last=False)
        return value

    def clear(self) -> None:
        """Forget everything."""
        self._items.clear()

    def __len__(self) -> int:
        return len(self._items)


# summaries (:func:`backtesting.summary.summarise`) by the fingerprint of everything they read:
# a what-if or a sweep in the same process re-tests only the series its change touched
SUMMARIES: Memo[dict[str, Any]] = Memo(4_096)

# (data fingerprint, mpor, day) -> {(the portfolios, realised?): the day's books or None}
_BOOKS: Memo[dict[tuple[frozenset[Portfolio], bool], DayBook | None]] = Memo(50_000)


def build_days(
    history: MarketHistory,
    books: Sequence[Portfolio],
    days: Sequence[pd.Timestamp],
    mpor: int,
    *,
    realised: bool,
    data: str,
) -> list[DayBook]:
    """:func:`backtesting.replay.build_day` for every day of ``days`` (days without books left
    out), reusing a day built before on the same data (``data``: its fingerprint) for the same
    or more portfolios — the extra portfolios' rows ride along (their positions' layout is
    already computed, which costs less than a selection's); callers select theirs by name.
    Portfolios compare as values (a library book is the same object in every run; a book read
    from a file is new each time, so it is never taken for another).
    """
    wanted = frozenset(books)
    out = []
    for day in days:
        built = _BOOKS.get((data, mpor, day))
        if built is None:
            built = _BOOKS.put((data, mpor, day), {})
        book = _lookup(built, wanted, realised)
        if book is _MISSING:
            book = built[(wanted, realised)] = build_day(
                history, books, day, mpor, realised=realised
            )
        if isinstance(book, DayBook):
            out.append(book)
    return out


_MISSING = object()


def _lookup(built: dict, wanted: frozenset, realised: bool) -> DayBook | None | object:
    if (wanted, realised) in built:
        return built[(wanted, realised)]
    for (portfolios, flag), book in built.items():
        if book is None and flag and not realised:
            continue  # no realised P&L that day (a close missing in the MPOR): margins may exist
        if wanted <= portfolios and (flag or not realised):
            if book is not None and not set(book.portfolio) & {p.name for p in wanted}:
                return None  # none of the wanted books had its inputs that day
            return book
    return _MISSING


def clear() -> None:
    """Empty the process's memos (the day books, the summaries and the simulated nulls)."""
    _BOOKS.clear()
    SUMMARIES.clear()
    clear_nulls()
