"""The Deribit client against a local HTTP server speaking Deribit's documented JSON: paging,
retries on 429/5xx, slow replies, dropped connections, malformed replies; and the configured
source end to end (fetch, write, load — or, on failure, nothing written)."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from fake_deribit import DAY_MS, FakeDeribit, bar

from pipelines.ingest.configured import load_configured
from pipelines.ingest.kinds import Kind
from pipelines.settings import DeribitSource, load_settings
from pipelines.sources.deribit import (
    ClientOptions,
    DeribitClient,
    DeribitReplyError,
    DeribitUnavailable,
)

CHART = "public/get_tradingview_chart_data"
DVOL = "public/get_volatility_index_data"


@pytest.fixture
def server():
    with FakeDeribit() as fake:
        yield fake


def client_for(server: FakeDeribit, **options) -> DeribitClient:
    defaults = {"backoff_seconds": 0.0, "requests_per_second": 1000.0, "timeout_seconds": 2.0}
    return DeribitClient(ClientOptions(base_url=server.url, **(defaults | options)))


def midnight_ms(day: date) -> int:
    return (day - date(1970, 1, 1)).days * DAY_MS


def test_price_history_pages_by_time_window_and_matches_the_served_bars(server):
    start, end = date(2024, 1, 1), date(2024, 1, 10)
    with client_for(server, page_days=3) as client:
        frame = client.price_history("BTC", start, end)
    calls = server.calls(CHART)
    assert len(calls) == 4  # 3 + 3 + 3 + 1 days
    assert [int(c["start_timestamp"]) for c in calls] == [
        midnight_ms(start + timedelta(days=3 * i)) for i in range(4)
    ]
    assert all(c["resolution"] == "1D" and c["instrument_name"] == "BTC-PERPETUAL" for c in calls)
    assert list(frame["date"]) == [start + timedelta(days=i) for i in range(10)]
    for row in frame.itertuples():
        o, h, lo, c, v = bar(midnight_ms(row.date), 60_000.0)
        assert (row.open, row.high, row.low, row.close, row.volume) == (o, h, lo, c, v)


def test_dvol_history_follows_continuation_until_the_window_is_covered(server):
    start, end = date(2024, 3, 1), date(2024, 3, 10)
    with client_for(server) as client:
        bars = client.dvol_history("ETH", start, end)
    calls = server.calls(DVOL)
    assert len(calls) == 3  # 4 + 4 + 2 bars, newest page first
    ends = [int(c["end_timestamp"]) for c in calls]
    assert ends[0] == midnight_ms(end) and ends[0] > ends[1] > ends[2]
    assert [b[0] for b in bars] == [midnight_ms(start + timedelta(days=i)) for i in range(10)]
    assert bars[3][1:] == list(bar(bars[3][0], 70.0)[:4])


def test_a_429_is_retried_after_retry_after_and_then_succeeds(server):
    server.script(CHART, ("status", 429))
    with client_for(server) as client:
        frame = client.price_history("BTC", date(2024, 1, 1), date(2024, 1, 2))
    assert len(server.calls(CHART)) == 2
    assert len(frame) == 2


def test_a_500_three_times_is_a_clear_error_and_nothing_is_written(server, home, con):
    server.script(CHART, ("status", 500), ("status", 500), ("status", 500))
    with client_for(server) as client, pytest.raises(DeribitUnavailable) as info:
        client.price_history("BTC", date(2024, 1, 1), date(2024, 1, 5))
    message = str(info.value)
    assert CHART in message and "3 attempt(s)" in message and "HTTP 500" in message
    assert "2024-01-01" in message  # the window that failed

    # The configured source: the failure is reported and no file and no row lands.
    server.script(CHART, ("status", 500), ("status", 500), ("status", 500))
    settings = _deribit_settings(home, server)
    before = con.execute("SELECT count(*) FROM market.ingest_batches").fetchone()[0]
    outcome = load_configured(con, settings, {Kind.PRICES}, (date(2024, 1, 1), date(2024, 1, 5)))
    assert len(outcome.errors) == 1 and "gave up after 3 attempt(s)" in outcome.errors[0]
    assert outcome.reports == []
    assert not (settings.datasets_dir / "deribit").exists() or not any(
        (settings.datasets_dir / "deribit").iterdir()
    )
    assert con.execute("SELECT count(*) FROM market.prices").fetchone()[0] == 0
    assert con.execute("SELECT count(*) FROM market.ingest_batches").fetchone()[0] == before


def test_a_malformed_reply_names_the_method_and_the_field(server):
    good = server.market.chart(
        {
            "instrument_name": "BTC-PERPETUAL",
            "start_timestamp": midnight_ms(date(2024, 1, 1)),
            "end_timestamp": midnight_ms(date(2024, 1, 3)),
        }
    )
    good["close"][2] = "n/a"
    server.script(CHART, ("json", good))
    with client_for(server) as client, pytest.raises(DeribitReplyError) as info:
        client.price_history("BTC", date(2024, 1, 1), date(2024, 1, 3))
    assert CHART in str(info.value)
    assert "result.close.2" in str(info.value)
    assert len(server.calls(CHART)) == 1  # a malformed reply is not retried

    server.script(DVOL, ("json", {"data": [[1, 2, 3, 4]], "continuation": None}))
    with client_for(server) as client, pytest.raises(DeribitReplyError, match=r"result\.data\.0"):
        client.dvol_history("BTC", date(2024, 1, 1), date(2024, 1, 3))


def test_unequal_arrays_are_malformed(server):
    reply = {"status": "ok", "ticks": [0, DAY_MS], "open": [1.0], "high": [1.0, 1.0],
             "low": [1.0, 1.0], "close": [1.0, 1.0], "volume": [1.0, 1.0]}  # fmt: skip
    server.script(CHART, ("json", reply))
    with client_for(server) as client, pytest.raises(DeribitReplyError, match="open has 1"):
        client.price_history("BTC", date(2024, 1, 1), date(2024, 1, 2))


def test_a_json_rpc_error_that_is_not_transient_is_not_retried(server):
    server.script(CHART, ("status", 400))
    with client_for(server) as client, pytest.raises(DeribitReplyError) as info:
        client.price_history("BTC", date(2024, 1, 1), date(2024, 1, 2))
    assert "10019" in str(info.value) and "invalid_argument" in str(info.value)
    assert len(server.calls(CHART)) == 1


def test_a_slow_reply_times_out_and_is_retried(server):
    server.script(CHART, ("slow", 1.0))
    with client_for(server, timeout_seconds=0.3) as client:
        frame = client.price_history("BTC", date(2024, 1, 1), date(2024, 1, 2))
    assert len(frame) == 2 and len(server.calls(CHART)) == 2

    server.script(CHART, ("slow", 1.0), ("slow", 1.0))
    slow = client_for(server, timeout_seconds=0.3, max_attempts=2)
    with slow, pytest.raises(DeribitUnavailable, match="timed out after 0.3 s"):
        slow.price_history("BTC", date(2024, 1, 1), date(2024, 1, 2))


def test_a_dropped_connection_is_retried(server):
    server.script(DVOL, "drop")
    with client_for(server) as client:
        bars = client.dvol_history("BTC", date(2024, 1, 1), date(2024, 1, 2))
    assert len(bars) == 2 and len(server.calls(DVOL)) == 2

    server.script(DVOL, "drop", "drop", "drop")
    with client_for(server) as client, pytest.raises(DeribitUnavailable, match="connection failed"):
        client.dvol_history("BTC", date(2024, 1, 1), date(2024, 1, 2))


def test_requests_are_spaced_to_the_rate_limit_and_backoff_doubles():
    import httpx

    calls = {"n": 0}

    def handler(request: httpx.Request) -> httpx.Response:
        calls["n"] += 1
        if calls["n"] <= 2:
            return httpx.Response(
                503, json={"jsonrpc": "2.0", "error": {"code": 1, "message": "x"}}
            )
        return httpx.Response(200, json={"jsonrpc": "2.0", "result": {"data": [], "continuation": None}})  # fmt: skip

    now = {"t": 0.0}
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(round(seconds, 6))
        now["t"] += seconds

    options = ClientOptions(base_url="http://deribit.test/api/v2", requests_per_second=2.0,
                            backoff_seconds=0.25, max_attempts=3)  # fmt: skip
    client = DeribitClient(
        options, transport=httpx.MockTransport(handler), sleep=sleep, clock=lambda: now["t"]
    )
    client.dvol_history("BTC", date(2024, 1, 1), date(2024, 1, 1))
    # backoff 0.25 then 0.5; the rate limit's 0.5 s spacing is already covered by each backoff
    # except after the first (0.25 < 0.5: wait the remaining 0.25).
    assert slept == [0.25, 0.25, 0.5]
    assert client.requests == 3


def test_option_chain_lands_in_option_marks_through_the_ordinary_loader(server, home, con):
    settings = _deribit_settings(home, server, option_chain=True)
    outcome = load_configured(con, settings, {Kind.OPTIONS})
    assert outcome.errors == []
    assert [r.kind for r in outcome.reports] == ["options"]
    rows = con.execute(
        "SELECT instrument_name, option_type, strike, implied_volatility, index_price, source "
        "FROM market.option_marks ORDER BY instrument_name"
    ).fetchall()
    assert len(rows) == 6  # every listed option with a mark and a mark IV
    first = rows[0]
    assert first[0] == "BTC-26DEC31-50000-C" and first[1] == "call" and first[2] == 50_000.0
    assert first[3] == pytest.approx(0.55)  # mark_iv 55 vol points → decimal
    assert first[4] == 60_000.0 and first[5] == "deribit"


def test_configured_source_loads_a_partition_window_idempotently(server, home, con):
    settings = _deribit_settings(home, server)
    window = (date(2024, 2, 1), date(2024, 2, 3))
    first = load_configured(con, settings, {Kind.PRICES, Kind.IV}, window)
    assert first.errors == []
    assert sum(r.inserted for r in first.reports) == 3 * 2  # 3 days × BTC prices + BTC DVOL
    prices = con.execute(
        "SELECT date, close, source FROM market.prices WHERE asset = 'BTC' ORDER BY date"
    ).fetchall()
    assert [p[0] for p in prices] == [date(2024, 2, 1), date(2024, 2, 2), date(2024, 2, 3)]
    assert prices[0][1] == pytest.approx(bar(midnight_ms(date(2024, 2, 1)), 60_000.0)[3])
    iv = con.execute("SELECT iv FROM market.implied_vol WHERE asset='BTC' ORDER BY date").fetchall()
    assert iv[0][0] == pytest.approx(bar(midnight_ms(date(2024, 2, 1)), 55.0)[3] / 100)
    again = load_configured(con, settings, {Kind.PRICES, Kind.IV}, window)
    assert sum(r.inserted for r in again.reports) == 0
    assert sum(r.already_present for r in again.reports) == 6


def test_environment_variables_override_the_config_file(home, monkeypatch, server):
    home.mkdir(parents=True)
    (home / "config.yaml").write_text(
        "market:\n  assets: [BTC, ETH, SOL]\nsources:\n"
        "  - type: synthetic\n  - type: deribit\n    currencies: [BTC]\n"
    )
    monkeypatch.setenv("MWB__sources__1__base_url", server.url)
    monkeypatch.setenv("MWB__sources__1__max_attempts", "5")
    monkeypatch.setenv("MWB__market__assets", "[BTC, ETH]")
    settings = load_settings()
    deribit = settings.sources[1]
    assert isinstance(deribit, DeribitSource)
    assert deribit.base_url == server.url and deribit.max_attempts == 5
    assert deribit.currencies == ("BTC",)  # untouched by the overrides
    assert settings.market.assets == ("BTC", "ETH")

    monkeypatch.setenv("MWB__sources__5__type", "deribit")
    with pytest.raises(Exception, match="MWB__sources__5__type: index 5 skips items"):
        load_settings()


def _deribit_settings(home, server, **extra):
    from pipelines.settings import WorkbenchSettings

    source = DeribitSource(
        base_url=server.url,
        currencies=("BTC",),
        backoff_seconds=0.0,
        requests_per_second=1000.0,
        timeout_seconds=2.0,
        **extra,
    )
    return WorkbenchSettings(home=home, sources=(source,))


def test_fetch_window_defaults_to_the_last_history_days(server, home):
    from pipelines.ingest.configured import fetch_deribit

    source = DeribitSource(base_url=server.url, currencies=("BTC",), history_days=5,
                           backoff_seconds=0.0, requests_per_second=1000.0)  # fmt: skip
    settings = _deribit_settings(home, server)
    paths = fetch_deribit(settings, source, {Kind.PRICES}, None, today=date(2024, 6, 10))
    assert [p.name for p in paths] == ["prices-BTC-20240605-20240609.csv"]
