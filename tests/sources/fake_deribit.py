"""A local stand-in for Deribit's public API on 127.0.0.1, answering in the documented JSON
(https://docs.deribit.com/): JSON-RPC envelopes ``{"jsonrpc": "2.0", "result": …}`` and
``{"jsonrpc": "2.0", "error": {"code": …, "message": …}}``.

Tests script it: ``server.script(method, behaviour, …)`` queues behaviours consumed one per
request to that method (then the default, a correct reply from the fake market). Behaviours:
``"ok"``, ``("status", code)`` (HTTP error with a JSON-RPC error body), ``("slow", seconds)``,
``"drop"`` (close the connection without a reply), ``("json", body)`` (this exact result).
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
from collections import defaultdict, deque
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

DAY_MS = 86_400_000


def bar(ts: int, base: float) -> tuple[float, float, float, float, float]:
    """A deterministic daily bar for timestamp ``ts`` (the fake market's truth)."""
    day = ts // DAY_MS
    close = base * (1.0 + 0.01 * ((day * 7919) % 13 - 6) / 6.0)
    return close * 0.99, close * 1.02, close * 0.97, close, 100.0 + day % 17


class FakeMarket:
    """The fake market's data: bars per instrument and DVOL per currency, option chain."""

    chart_base = {"BTC-PERPETUAL": 60_000.0, "ETH-PERPETUAL": 3_000.0}
    dvol_base = {"BTC": 55.0, "ETH": 70.0}
    dvol_page = 4  # bars per DVOL reply before a continuation

    def chart(self, params: dict) -> dict:
        name = params["instrument_name"]
        start, end = int(params["start_timestamp"]), int(params["end_timestamp"])
        ticks = list(range(-(-start // DAY_MS) * DAY_MS, end + 1, DAY_MS))
        if not ticks:
            return {"status": "no_data", "ticks": [], "open": [], "high": [], "low": [],
                    "close": [], "volume": [], "cost": []}  # fmt: skip
        bars = [bar(t, self.chart_base[name]) for t in ticks]
        return {
            "status": "ok",
            "ticks": ticks,
            "open": [b[0] for b in bars],
            "high": [b[1] for b in bars],
            "low": [b[2] for b in bars],
            "close": [b[3] for b in bars],
            "volume": [b[4] for b in bars],
            "cost": [b[4] * b[3] for b in bars],
        }

    def dvol(self, params: dict) -> dict:
        currency = params["currency"]
        start, end = int(params["start_timestamp"]), int(params["end_timestamp"])
        ticks = list(range(-(-start // DAY_MS) * DAY_MS, end + 1, DAY_MS))
        page = ticks[-self.dvol_page :]  # newest first pages, like Deribit
        older = ticks[: -self.dvol_page]
        data = [[t, *bar(t, self.dvol_base[currency])[:4]] for t in page]
        return {"data": data, "continuation": older[-1] if older else None}

    def instruments(self, params: dict) -> list:
        expiry = int(datetime(2031, 12, 26, 8, tzinfo=UTC).timestamp() * 1000)
        out = []
        for strike in (50_000, 60_000, 70_000):
            for kind, letter in (("call", "C"), ("put", "P")):
                out.append(
                    {
                        "instrument_name": f"BTC-26DEC31-{strike}-{letter}",
                        "kind": "option",
                        "base_currency": "BTC",
                        "settlement_currency": "BTC",
                        "strike": float(strike),
                        "option_type": kind,
                        "expiration_timestamp": expiry,
                        "is_active": True,
                        "tick_size": 0.0005,
                        "contract_size": 1.0,
                    }
                )
        return out

    def books(self, params: dict) -> list:
        out = []
        for i, item in enumerate(self.instruments(params)):
            out.append(
                {
                    "instrument_name": item["instrument_name"],
                    "creation_timestamp": 1_700_000_000_000,
                    "mark_price": 0.05 + 0.01 * i,
                    "mark_iv": 55.0 + i,
                    "bid_price": 0.049 + 0.01 * i,
                    "ask_price": 0.051 + 0.01 * i,
                    "mid_price": 0.05 + 0.01 * i,
                    "underlying_price": 61_000.0,
                    "underlying_index": "BTC-26DEC31",
                    "estimated_delivery_price": 60_000.0,
                    "open_interest": 10.0 + i,
                    "volume": 1.0,
                    "volume_usd": 3_000.0,
                    "base_currency": "BTC",
                    "quote_currency": "BTC",
                }
            )
        return out


class FakeDeribit:
    """``with FakeDeribit() as server: server.url`` — the base URL ending in ``/api/v2``."""

    def __init__(self) -> None:
        self.market = FakeMarket()
        self.scripts: dict[str, deque] = defaultdict(deque)
        self.requests: list[tuple[str, dict]] = []
        self._lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:  # keep test output clean
                pass

            def do_GET(self) -> None:
                url = urlparse(self.path)
                method = url.path.removeprefix("/api/v2/")
                params = {k: v[0] for k, v in parse_qs(url.query).items()}
                with fake._lock:
                    fake.requests.append((method, params))
                    queued = fake.scripts[method]
                    behaviour = queued.popleft() if queued else "ok"
                fake._answer(self, method, params, behaviour)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/api/v2"

    def script(self, method: str, *behaviours) -> None:
        with self._lock:
            self.scripts[method].extend(behaviours)

    def calls(self, method: str) -> list[dict]:
        return [p for m, p in self.requests if m == method]

    def __enter__(self) -> FakeDeribit:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()

    # -- replies ---------------------------------------------------------------------------

    def _result(self, method: str, params: dict):
        if method == "public/get_tradingview_chart_data":
            return self.market.chart(params)
        if method == "public/get_volatility_index_data":
            return self.market.dvol(params)
        if method == "public/get_instruments":
            return self.market.instruments(params)
        if method == "public/get_book_summary_by_currency":
            return self.market.books(params)
        return None

    def _answer(self, handler: BaseHTTPRequestHandler, method: str, params: dict, behaviour):
        import time

        status, body, headers = 200, None, {}
        if behaviour == "drop":
            # Close the socket without a byte of reply: the client sees a dropped connection.
            handler.close_connection = True
            with contextlib.suppress(OSError):
                handler.connection.shutdown(socket.SHUT_RDWR)
            return
        if isinstance(behaviour, tuple) and behaviour[0] == "slow":
            time.sleep(behaviour[1])
            behaviour = "ok"
        if behaviour == "ok":
            result = self._result(method, params)
            if result is None:
                status = 400
                body = {"jsonrpc": "2.0", "error": {"code": -32601, "message": "Method not found"}}
            else:
                body = {"jsonrpc": "2.0", "result": result, "usIn": 0, "usOut": 1, "usDiff": 1,
                        "testnet": False}  # fmt: skip
        elif behaviour[0] == "status":
            status = behaviour[1]
            code, message = {
                429: (10028, "too_many_requests"),
                500: (11094, "internal_server_error"),
                400: (10019, "invalid_argument"),
            }.get(status, (13888, "timed_out"))
            body = {"jsonrpc": "2.0", "error": {"code": code, "message": message}}
            if status == 429:
                headers["Retry-After"] = "0"
        elif behaviour[0] == "json":
            body = {"jsonrpc": "2.0", "result": behaviour[1]}
        data = json.dumps(body).encode()
        handler.send_response(status)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(data)))
        for k, v in headers.items():
            handler.send_header(k, v)
        handler.end_headers()
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            handler.wfile.write(data)  # the client may have timed out and gone away
