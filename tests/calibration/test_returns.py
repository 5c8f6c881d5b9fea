"""Log returns and the explicit gap policy."""

import numpy as np
import pandas as pd
import pytest

from calibration.returns import Calendar, GapPolicy, log_returns


def closes(days: list[str], values: list[float]) -> pd.Series:
    return pd.Series(values, index=pd.to_datetime(days))


def test_daily_log_returns() -> None:
    series = closes(["2024-01-01", "2024-01-02", "2024-01-03"], [100.0, 110.0, 99.0])
    result = log_returns(series, asset="BTC")
    np.testing.assert_allclose(result.values, [np.log(1.1), np.log(0.9)])
    assert result.gaps.empty and (result.span_days == 1).all()


@pytest.mark.parametrize("policy", list(GapPolicy))
def test_a_gap_is_flagged_and_treated_as_the_policy_says(policy: GapPolicy) -> None:
    series = closes(
        ["2024-01-01", "2024-01-02", "2024-01-06", "2024-01-07"], [100.0, 101.0, 105.0, 104.0]
    )
    result = log_returns(series, asset="ETH", policy=policy)
    gap = result.gaps.iloc[0]
    assert (len(result.gaps), gap["span_days"], gap["action"]) == (1, 4, policy.value)
    assert gap["return"] == pytest.approx(np.log(105 / 101))
    if policy is GapPolicy.KEEP:
        assert result.values.loc["2024-01-06"] == pytest.approx(np.log(105 / 101))
    elif policy is GapPolicy.DROP:
        assert pd.Timestamp("2024-01-06") not in result.values.index and len(result.values) == 2
    else:
        assert result.values.loc["2024-01-06"] == pytest.approx(np.log(105 / 101) / 2)
    # nothing was forward-filled: no value exists for the missing days
    assert not set(pd.date_range("2024-01-03", "2024-01-05")) & set(result.values.index)


def test_weekday_calendar_does_not_flag_weekends() -> None:
    series = closes(["2024-01-05", "2024-01-08", "2024-01-09", "2024-01-12"], [1.0, 1.1, 1.2, 1.3])
    result = log_returns(series, calendar=Calendar.WEEKDAYS)  # Fri -> Mon is one trading day
    assert result.span_days.tolist() == [1, 1, 3]
    assert len(result.gaps) == 1


def test_bad_prices_are_refused() -> None:
    with pytest.raises(ValueError, match="positive"):
        log_returns(closes(["2024-01-01", "2024-01-02"], [1.0, -1.0]))
    with pytest.raises(ValueError, match="missing closes"):
        log_returns(closes(["2024-01-01", "2024-01-02"], [1.0, np.nan]))
    with pytest.raises(ValueError, match="duplicate dates"):
        log_returns(closes(["2024-01-01", "2024-01-01"], [1.0, 2.0]))
