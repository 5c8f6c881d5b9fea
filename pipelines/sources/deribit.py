"""A client for Deribit's public API (v2, JSON over HTTP GET): index price history, DVOL
history and the option chain.

Methods used (https://docs.deribit.com/):

- ``public/get_tradingview_chart_data`` — daily OHLCV bars of an instrument (the perpetual
  tracks the index: ``BTC-PERPETUAL``); paged by time window, ``page_days`` bars per request.
- ``public/get_volatility_index_data`` — the DVOL index, ``data: [[ts_ms, o, h, l, c], …]``
  with a ``continuation`` timestamp while older bars remain; followed until exhausted.
- ``public/get_instruments`` and ``public/get_book_summary_by_currency`` — the live option
  chain (strikes and expiries from the first, marks and mark IV from the second), written in
  the shape of the bundled option-chain snapshots so the ordinary loader ingests it.

Every reply is validated (pydantic) before anything is used; a malformed reply raises
:class:`DeribitReplyError` naming the method and the field. Requests are spaced to a rate
limit; 429s, 5xx replies, timeouts and dropped connections are retried with exponential
backoff (``Retry-After`` honoured) up to ``max_attempts``; then :class:`DeribitUnavailable`.
Fetching never writes: callers fetch everything first, then write files and load them.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import httpx
import pandas as pd
from pydantic import BaseModel, ConfigDict, TypeAdapter, ValidationError, model_validator

DEFAULT_BASE_URL = "https://www.deribit.com/api/v2"
DAY_MS = 86_400_000
_RETRYABLE_STATUS = frozenset({429, 500, 502, 503, 504})
_RATE_LIMIT_CODES = frozenset({10028})  # JSON-RPC "too_many_requests"


class DeribitError(RuntimeError):
    """A request to Deribit failed; the message names the method and what went wrong."""


class DeribitUnavailable(DeribitError):
    """Deribit kept failing (5xx, 429, timeouts, dropped connections) after every retry."""


class DeribitReplyError(DeribitError):
    """Deribit answered, but not in the documented shape, or with a JSON-RPC error."""


# --------------------------------------------------------------------------- reply schemas


class _Reply(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class _RpcError(_Reply):
    code: int
    message: str
    data: Any = None


class _Envelope(_Reply):
    result: Any = None
    error: _RpcError | None = None

    @model_validator(mode="after")
    def _one_of(self) -> _Envelope:
        if self.error is None and self.result is None:
            raise ValueError("neither 'result' nor 'error' is present")
        return self


class ChartData(_Reply):
    """``public/get_tradingview_chart_data``: parallel arrays, one entry per bar."""

    status: Literal["ok", "no_data"]
    ticks: list[int]
    open: list[float]
    high: list[float]
    low: list[float]
    close: list[float]
    volume: list[float]

    @model_validator(mode="after")
    def _same_length(self) -> ChartData:
        n = len(self.ticks)
        for name in ("open", "high", "low", "close", "volume"):
            if len(getattr(self, name)) != n:
                raise ValueError(f"{name} has {len(getattr(self, name))} entries, ticks has {n}")
        return self


class VolatilityIndexData(_Reply):
    """``public/get_volatility_index_data``: ``[ts_ms, open, high, low, close]`` bars."""

    data: list[tuple[int, float, float, float, float]]
    continuation: int | None = None


class BookSummary(_Reply):
    instrument_name: str
    creation_timestamp: int
    mark_price: float | None = None
    mark_iv: float | None = None
    bid_price: float | None = None
    ask_price: float | None = None
    mid_price: float | None = None
    underlying_price: float | None = None
    underlying_index: str | None = None
    estimated_delivery_price: float | None = None
    open_interest: float | None = None
    volume: float | None = None
    volume_usd: float | None = None


class InstrumentInfo(_Reply):
    instrument_name: str
    kind: str
    base_currency: str
    expiration_timestamp: int
    strike: float | None = None
    option_type: Literal["call", "put"] | None = None
    settlement_currency: str | None = None
    is_active: bool = True


# --------------------------------------------------------------------------- client


@dataclass(frozen=True)
class ClientOptions:
    """How patiently to talk to Deribit."""

    base_url: str = DEFAULT_BASE_URL
    timeout_seconds: float = 10.0
    max_attempts: int = 3  # total tries per request, the first included
    backoff_seconds: float = 0.5  # wait before retry k is backoff × 2^(k-1), unless Retry-After
    requests_per_second: float = 5.0  # well under Deribit's public-method credit refill
    page_days: int = 365  # daily bars per chart-data request

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError(f"max_attempts must be at least 1, got {self.max_attempts}")
        if self.timeout_seconds <= 0 or self.requests_per_second <= 0 or self.page_days < 1:
            raise ValueError("timeout_seconds, requests_per_second and page_days must be positive")


class DeribitClient:
    """Deribit public API over one ``httpx.Client`` (closed by ``close`` or ``with``)."""

    def __init__(
        self,
        options: ClientOptions | None = None,
        *,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.options = options or ClientOptions()
        self._http = httpx.Client(
            base_url=self.options.base_url.rstrip("/") + "/",
            timeout=self.options.timeout_seconds,
            transport=transport,
            headers={"accept": "application/json", "user-agent": "margin-workbench"},
        )
        self._sleep = sleep
        self._clock = clock
        self._next_slot = 0.0
        self.requests = 0  # HTTP requests sent, retries included

    def __enter__(self) -> DeribitClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    # -- transport ---------------------------------------------------------------------

    def _wait_for_slot(self) -> None:
        now = self._clock()
        if now < self._next_slot:
            self._sleep(self._next_slot - now)
            now = self._next_slot
        self._next_slot = now + 1.0 / self.options.requests_per_second

    def call(self, method: str, params: dict[str, Any]) -> Any:
        """One public method's ``result``, retried on transient failures."""
        what = f"{method} ({_describe(params)})"
        last = ""
        for attempt in range(1, self.options.max_attempts + 1):
            self._wait_for_slot()
            self.requests += 1
            retry_after: float | None = None
            try:
                response = self._http.get(method, params=params)
            except httpx.TimeoutException:
                last = f"timed out after {self.options.timeout_seconds:g} s"
            except httpx.TransportError as exc:
                last = f"connection failed ({type(exc).__name__}: {exc or 'no reply'})"
            else:
                envelope = _envelope(what, response)
                if response.status_code in _RETRYABLE_STATUS or (
                    envelope is not None
                    and envelope.error is not None
                    and envelope.error.code in _RATE_LIMIT_CODES
                ):
                    last = f"HTTP {response.status_code}" + (
                        f" {envelope.error.message}" if envelope and envelope.error else ""
                    )
                    retry_after = _retry_after(response)
                elif envelope is None:
                    raise DeribitReplyError(
                        f"{what}: HTTP {response.status_code}, reply is not JSON: "
                        f"{response.text[:200]!r}"
                    )
                elif envelope.error is not None:
                    raise DeribitReplyError(
                        f"{what}: Deribit error {envelope.error.code} "
                        f"{envelope.error.message!r} (HTTP {response.status_code})"
                    )
                elif response.status_code != 200:
                    raise DeribitReplyError(f"{what}: HTTP {response.status_code}")
                else:
                    return envelope.result
            if attempt < self.options.max_attempts:
                self._sleep(
                    retry_after
                    if retry_after is not None
                    else self.options.backoff_seconds * 2 ** (attempt - 1)
                )
        raise DeribitUnavailable(
            f"{what}: gave up after {self.options.max_attempts} attempt(s); last: {last}"
        )

    def fetch(self, schema: Any, method: str, params: dict[str, Any]) -> Any:
        """``method``'s result validated as ``schema`` (a reply model, or ``list[model]``); a
        mismatch names the field (``result.close.2``, ``result.3.mark_iv``)."""
        result = self.call(method, params)
        try:
            return TypeAdapter(schema).validate_python(result)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in ("result", *first["loc"]))
            got = first.get("input")
            shown = "" if isinstance(got, dict | list) or got is None else f" (got {got!r})"
            raise DeribitReplyError(
                f"{method} ({_describe(params)}): malformed reply: {where}: {first['msg']}{shown}"
            ) from exc

    # -- methods -------------------------------------------------------------------------

    def price_history(
        self, currency: str, start: date, end: date, *, instrument: str | None = None
    ) -> pd.DataFrame:
        """Daily bars of ``instrument`` (default ``{currency}-PERPETUAL``) from ``start`` to
        ``end`` inclusive, as tidy price rows (``asset, date, open, high, low, close, volume``)."""
        instrument = instrument or f"{currency}-PERPETUAL"
        frames = []
        page_start = start
        while page_start <= end:
            page_end = min(end, page_start + timedelta(days=self.options.page_days - 1))
            params = {
                "instrument_name": instrument,
                "start_timestamp": _ms(page_start),
                "end_timestamp": _ms(page_end),
                "resolution": "1D",
            }
            method = "public/get_tradingview_chart_data"
            chart = self.fetch(ChartData, method, params)
            if chart.status == "ok" and chart.ticks:
                frames.append(
                    pd.DataFrame(
                        {
                            "ts": chart.ticks,
                            "open": chart.open,
                            "high": chart.high,
                            "low": chart.low,
                            "close": chart.close,
                            "volume": chart.volume,
                        }
                    )
                )
            page_start = page_end + timedelta(days=1)
        columns = ["asset", "date", "open", "high", "low", "close", "volume"]
        if not frames:
            return pd.DataFrame(columns=columns)
        bars = pd.concat(frames, ignore_index=True)
        bars = bars.drop_duplicates("ts", keep="last").sort_values("ts", ignore_index=True)
        bars["date"] = pd.to_datetime(bars["ts"], unit="ms", utc=True).dt.date
        bars = bars[(bars["date"] >= start) & (bars["date"] <= end)]
        return bars.assign(asset=currency)[columns].reset_index(drop=True)

    def dvol_history(self, currency: str, start: date, end: date) -> list[list[float]]:
        """DVOL daily bars ``[ts_ms, open, high, low, close]`` from ``start`` to ``end``,
        oldest first, following ``continuation`` until the window is covered."""
        method = "public/get_volatility_index_data"
        bars: dict[int, list[float]] = {}
        window_end = _ms(end)
        for _ in range(100_000):  # a continuation must move back in time; this bounds a bad one
            params = {
                "currency": currency,
                "start_timestamp": _ms(start),
                "end_timestamp": window_end,
                "resolution": "1D",
            }
            page = self.fetch(VolatilityIndexData, method, params)
            for ts, o, h, lo, c in page.data:
                if _ms(start) <= ts <= _ms(end):
                    bars[ts] = [ts, o, h, lo, c]
            if page.continuation is None or page.continuation <= _ms(start):
                break
            if page.continuation >= window_end:
                raise DeribitReplyError(
                    f"{method} ({_describe(params)}): malformed reply: result.continuation: "
                    f"{page.continuation} does not move back from {window_end}"
                )
            window_end = page.continuation
        return [bars[ts] for ts in sorted(bars)]

    def option_chain(self, currency: str, now: datetime | None = None) -> pd.DataFrame:
        """The live option chain in the shape of the bundled snapshots
        (``../shared/data/options``): one row per active option with a mark and a mark IV."""
        instruments = self.fetch(
            list[InstrumentInfo],
            "public/get_instruments",
            {"currency": currency, "kind": "option", "expired": "false"},
        )
        books = self.fetch(
            list[BookSummary],
            "public/get_book_summary_by_currency",
            {"currency": currency, "kind": "option"},
        )
        by_name = {i.instrument_name: i for i in instruments}
        taken = now or datetime.now(UTC)
        rows = []
        for book in books:
            info = by_name.get(book.instrument_name)
            if info is None or info.strike is None or info.option_type is None:
                continue  # quoted but not listed as an active option: not ours to guess
            if book.mark_price is None or book.mark_iv is None:
                continue
            expiry = datetime.fromtimestamp(info.expiration_timestamp / 1000, tz=UTC)
            years = (expiry - taken).total_seconds() / (365.0 * 86_400)
            if years <= 0:
                continue
            index_price = book.estimated_delivery_price or book.underlying_price
            bid, ask = book.bid_price, book.ask_price
            rows.append(
                {
                    "timestamp": taken.isoformat(),
                    "instrument_name": book.instrument_name,
                    "underlying": book.underlying_price,
                    "underlying_name": book.underlying_index,
                    "option_type": info.option_type,
                    "strike": info.strike,
                    "expiry_datetime": expiry.isoformat(),
                    "time_to_maturity": years,
                    "bid_price": bid,
                    "ask_price": ask,
                    "mark_price": book.mark_price,
                    "mid_price": book.mid_price
                    if book.mid_price is not None
                    else (bid + ask) / 2
                    if bid is not None and ask is not None
                    else None,
                    "futures_price": book.underlying_price,
                    "futures_instrument_name": book.underlying_index,
                    "implied_volatility": book.mark_iv / 100.0,  # Deribit quotes vol points
                    "delta": None,
                    "vega": None,
                    "open_interest": book.open_interest,
                    "volume": book.volume,
                    "bid_ask_spread": ask - bid if bid is not None and ask is not None else None,
                    "currency": currency,
                    "index_price": index_price,
                    "volume_usd": book.volume_usd,
                }
            )
        return pd.DataFrame(rows).sort_values("instrument_name", ignore_index=True)


# --------------------------------------------------------------------------- helpers


def _ms(day: date) -> int:
    return int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp() * 1000)


def _describe(params: dict[str, Any]) -> str:
    shown = []
    for key, value in params.items():
        if key.endswith("_timestamp") and isinstance(value, int):
            value = datetime.fromtimestamp(value / 1000, tz=UTC).date().isoformat()
        shown.append(f"{key}={value}")
    return ", ".join(shown)


def _envelope(what: str, response: httpx.Response) -> _Envelope | None:
    try:
        body = response.json()
    except ValueError:
        return None
    if not isinstance(body, dict):
        return None
    try:
        return _Envelope.model_validate(body)
    except ValidationError as exc:
        if response.status_code in _RETRYABLE_STATUS:
            return None
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "reply"
        raise DeribitReplyError(f"{what}: malformed reply: {where}: {first['msg']}") from exc


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after")
    try:
        seconds = float(value) if value is not None else None
    except ValueError:
        return None
    return seconds if seconds is not None and math.isfinite(seconds) and seconds >= 0 else None


# --------------------------------------------------------------------------- files


@dataclass(frozen=True)
class DeribitFetch:
    """What one fetch brought back, not yet written anywhere."""

    prices: dict[str, pd.DataFrame]
    dvol: dict[str, list[list[float]]]
    chains: dict[str, pd.DataFrame]
    start: date
    end: date
    requests: int


def fetch(
    client: DeribitClient,
    currencies: tuple[str, ...],
    start: date,
    end: date,
    *,
    prices: bool = True,
    dvol: bool = True,
    option_chain: bool = False,
    dvol_currencies: tuple[str, ...] = ("BTC", "ETH"),
    now: datetime | None = None,
) -> DeribitFetch:
    """What a configured Deribit source asks for, all fetched before anything is written."""
    bars = {c: client.price_history(c, start, end) for c in currencies} if prices else {}
    vols = (
        {c: client.dvol_history(c, start, end) for c in currencies if c in dvol_currencies}
        if dvol
        else {}
    )
    chains = {c: client.option_chain(c, now) for c in currencies} if option_chain else {}
    return DeribitFetch(bars, vols, chains, start, end, client.requests)


def write_files(fetched: DeribitFetch, folder: Path, source: str = "deribit") -> list[Path]:
    """Write a fetch as loader-ready files (tidy price CSV, DVOL JSON in Deribit's reply shape,
    option-chain snapshot CSV); each file is written whole or not at all (rename)."""
    folder.mkdir(parents=True, exist_ok=True)
    span = f"{fetched.start:%Y%m%d}-{fetched.end:%Y%m%d}"
    written: list[Path] = []

    def atomic(path: Path, text: str) -> None:
        tmp = path.with_name(path.name + ".part")
        tmp.write_text(text)
        tmp.replace(path)
        written.append(path)

    for currency, frame in fetched.prices.items():
        if len(frame):
            atomic(
                folder / f"prices-{currency}-{span}.csv",
                frame.assign(source=source).to_csv(index=False, float_format="%.10g"),
            )
    for currency, bars in fetched.dvol.items():
        if bars:
            atomic(
                folder / f"dvol-{currency}-{span}.json",
                json.dumps({"currency": currency, "data": bars, "continuation": None}),
            )
    for currency, chain in fetched.chains.items():
        if len(chain):
            stamp = pd.Timestamp(chain["timestamp"].iloc[0]).strftime("%Y%m%dT%H%M%SZ")
            atomic(
                folder / f"deribit_options_snapshot_{currency}_{stamp}.csv",
                chain.to_csv(index=False),
            )
    return written


__all__ = [
    "BookSummary",
    "ChartData",
    "ClientOptions",
    "DeribitClient",
    "DeribitError",
    "DeribitFetch",
    "DeribitReplyError",
    "DeribitUnavailable",
    "InstrumentInfo",
    "VolatilityIndexData",
    "fetch",
    "write_files",
]
