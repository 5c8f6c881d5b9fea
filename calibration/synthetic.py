"""A seeded synthetic crypto market for the demo: BTC, ETH and SOL daily OHLCV and BTC/ETH
30-day implied-vol indices, clearly labelled ``source='synthetic'``.

The model, per asset *i* and UTC day *t* (decimal log returns, 365 trading days a year)::

    r[i,t]  = mu_i / 365 + eps[i,t] + J[i,t] + C[i,t]
    eps     = sigma[i,t] * z[i,t],   z[:,t] = L @ e[:,t],   e[i,t] ~ Student-t(nu_i), unit variance
    sigma^2[i,t+1] = omega_i + (alpha_i + gamma_i * 1{x<0}) * x^2 + beta_i * sigma^2[i,t],
                     x = eps[i,t] + J[i,t] + C[i,t]      (GJR-GARCH(1,1); shocks feed back)
    omega_i = vol_i^2 / 365 * (1 - alpha_i - gamma_i / 2 - beta_i)

``L`` is the Cholesky factor of the innovation correlation (BTC-ETH 0.80, BTC-SOL 0.60,
ETH-SOL 0.65). ``J`` are jumps: market-wide arrivals (3 a year, size N(-3 %, 6 %) times the
asset's loading 1.0/1.2/1.4) plus idiosyncratic ones (2 a year, N(0, 5 %)). ``C`` is one crash
episode on 2020-03-12/13 (-40/-45/-50 % then +10/+8/+12 %, log), which the variance recursion
turns into a volatility spike that decays with half-life ln 0.5 / ln(persistence).

Implied vol (BTC, ETH) is the model's own 30-day forecast volatility times a variance risk
premium, with noise that is negatively correlated with the spot innovation::

    avgvar[t] = s2 + (sigma^2[t+1] - s2) * (1 - p^30) / (30 (1 - p)) + jump variance per day
    iv[t]     = sqrt(365 * avgvar[t]) * vrp * exp(eta[t])
    eta[t]    = phi * eta[t-1] + s_eta * (rho * z[i,t] + sqrt(1 - rho^2) * w[t])

with ``p = alpha + gamma/2 + beta`` and ``s2 = vol^2/365``; ``vrp = 1.12``, ``phi = 0.92``,
``s_eta = 0.035``, ``rho = -0.5``. Intraday ranges: ``high = max(open, close) *
exp(0.5 sigma |u|)``, ``low = min(open, close) * exp(-0.5 sigma |u'|)``, ``open = previous
close``. Volume is log-normal and rises with ``|r|``.

Every number is drawn from ``numpy.random.default_rng(seed)`` in a fixed order: the same seed
gives the same rows, byte for byte, in the files ``pipelines.sources.synthetic`` writes.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import date

import numpy as np
import pandas as pd

from vocabulary import DAYS_PER_YEAR, SYNTHETIC_SEED

DEFAULT_SEED = SYNTHETIC_SEED


@dataclass(frozen=True)
class AssetModel:
    """GJR-GARCH(1,1)-t parameters of one synthetic asset (decimal returns)."""

    symbol: str
    start_price: float
    drift: float  # annual log drift
    vol: float  # unconditional annualised volatility of the diffusive part
    alpha: float
    gamma: float
    beta: float
    nu: float  # Student-t degrees of freedom
    jump_loading: float  # exposure to market-wide jumps
    crash: tuple[float, float]  # log returns on 2020-03-12 and 2020-03-13
    base_volume: float  # coins a day
    has_iv: bool

    def __post_init__(self) -> None:
        persistence = self.alpha + self.gamma / 2 + self.beta
        if not 0 < persistence < 1:
            raise ValueError(f"{self.symbol}: persistence {persistence:.4f} must be in (0, 1)")
        if self.nu <= 2:
            raise ValueError(f"{self.symbol}: nu must exceed 2 for a finite variance")

    @property
    def persistence(self) -> float:
        """Persistence :math:`\\alpha + \\gamma/2 + \\beta` of the asset's GJR-GARCH."""
        return self.alpha + self.gamma / 2 + self.beta


@dataclass(frozen=True)
class SyntheticMarketSpec:
    """Everything that determines the synthetic market; see the module docstring."""

    seed: int = DEFAULT_SEED
    start: date = date(2019, 1, 1)
    end: date = date(2024, 12, 31)
    assets: tuple[AssetModel, ...] = (
        AssetModel(
            "BTC", 3_800.0, 0.50, 0.52, 0.04, 0.06, 0.90, 4.5, 1.0, (-0.40, 0.10), 30_000.0, True
        ),
        AssetModel(
            "ETH", 135.0, 0.50, 0.65, 0.05, 0.06, 0.89, 4.5, 1.2, (-0.45, 0.08), 400_000.0, True
        ),
        AssetModel(
            "SOL", 1.50, 0.75, 0.78, 0.06, 0.05, 0.88, 4.0, 1.4, (-0.50, 0.12), 2_000_000.0, False
        ),
    )
    correlation: tuple[tuple[float, ...], ...] = (
        (1.00, 0.80, 0.60),
        (0.80, 1.00, 0.65),
        (0.60, 0.65, 1.00),
    )
    market_jumps_per_year: float = 3.0
    market_jump_mean: float = -0.03
    market_jump_sd: float = 0.06
    idio_jumps_per_year: float = 2.0
    idio_jump_sd: float = 0.05
    crash_day: date = date(2020, 3, 12)
    iv_tenor_days: int = 30
    variance_risk_premium: float = 1.12
    iv_noise_phi: float = 0.92
    iv_noise_sd: float = 0.035
    iv_spot_corr: float = -0.5
    range_scale: float = 0.5
    extra: dict = field(default_factory=dict, compare=False, hash=False)

    def __post_init__(self) -> None:
        n = len(self.assets)
        corr = np.asarray(self.correlation, dtype=float)
        if (
            corr.shape != (n, n)
            or not np.allclose(corr, corr.T)
            or not np.allclose(np.diag(corr), 1)
        ):
            raise ValueError(
                "correlation must be a symmetric unit-diagonal matrix, one row per asset"
            )
        if np.linalg.eigvalsh(corr).min() <= 0:
            raise ValueError("correlation must be positive definite")
        if not self.start < self.crash_day < self.end:
            raise ValueError("the crash day must fall inside [start, end]")

    def describe(self) -> dict:
        """The parameters as plain data, for lineage and documentation."""
        out = asdict(self)
        out.pop("extra")
        out["start"], out["end"], out["crash_day"] = (
            str(self.start),
            str(self.end),
            str(self.crash_day),
        )
        return out


@dataclass(frozen=True)
class SyntheticMarket:
    """The simulated prices, implied vols and the true conditional volatility."""

    spec: SyntheticMarketSpec
    prices: pd.DataFrame  # date, asset, open, high, low, close, volume, source
    implied_vol: pd.DataFrame  # date, asset, iv, tenor_days, source
    conditional_vol: pd.DataFrame  # date x asset: the true daily sigma (for tests)


def _unit_t(rng: np.random.Generator, nu: float, size: int) -> np.ndarray:
    return rng.standard_t(nu, size=size) * np.sqrt((nu - 2.0) / nu)


def generate_synthetic_market(spec: SyntheticMarketSpec | None = None) -> SyntheticMarket:
    """Simulate the market described by ``spec`` (deterministic in ``spec.seed``)."""
    spec = spec or SyntheticMarketSpec()
    rng = np.random.default_rng(spec.seed)
    days = pd.date_range(spec.start, spec.end, freq="D")
    n_days, n_assets = len(days), len(spec.assets)

    chol = np.linalg.cholesky(np.asarray(spec.correlation))
    raw = np.stack([_unit_t(rng, a.nu, n_days) for a in spec.assets])  # (assets, days)
    z = chol @ raw

    p_market = spec.market_jumps_per_year / DAYS_PER_YEAR
    market_hits = rng.random(n_days) < p_market
    market_sizes = rng.normal(spec.market_jump_mean, spec.market_jump_sd, n_days)
    p_idio = spec.idio_jumps_per_year / DAYS_PER_YEAR
    idio_hits = rng.random((n_assets, n_days)) < p_idio
    idio_sizes = rng.normal(0.0, spec.idio_jump_sd, (n_assets, n_days))
    loadings = np.array([a.jump_loading for a in spec.assets])[:, None]
    jumps = loadings * np.where(market_hits, market_sizes, 0.0) + np.where(
        idio_hits, idio_sizes, 0.0
    )
    crash = np.zeros((n_assets, n_days))
    k = days.get_loc(pd.Timestamp(spec.crash_day))
    for i, a in enumerate(spec.assets):
        crash[i, k : k + 2] = a.crash

    sigma2 = np.empty((n_assets, n_days + 1))
    returns = np.empty((n_assets, n_days))
    for i, a in enumerate(spec.assets):
        s2_bar = a.vol**2 / DAYS_PER_YEAR
        omega = s2_bar * (1.0 - a.persistence)
        sigma2[i, 0] = s2_bar
        for t in range(n_days):
            shock = np.sqrt(sigma2[i, t]) * z[i, t] + jumps[i, t] + crash[i, t]
            returns[i, t] = a.drift / DAYS_PER_YEAR + shock
            leverage = a.gamma if shock < 0 else 0.0
            sigma2[i, t + 1] = omega + (a.alpha + leverage) * shock**2 + a.beta * sigma2[i, t]

    closes = np.array([a.start_price for a in spec.assets])[:, None] * np.exp(
        np.cumsum(returns, axis=1)
    )
    opens = np.concatenate(
        [np.array([a.start_price for a in spec.assets])[:, None], closes[:, :-1]], axis=1
    )
    sigma = np.sqrt(sigma2[:, :n_days])
    up = np.abs(rng.standard_normal((n_assets, n_days)))
    down = np.abs(rng.standard_normal((n_assets, n_days)))
    highs = np.maximum(opens, closes) * np.exp(spec.range_scale * sigma * up)
    lows = np.minimum(opens, closes) * np.exp(-spec.range_scale * sigma * down)
    vol_noise = rng.standard_normal((n_assets, n_days))
    base = np.array([a.base_volume for a in spec.assets])[:, None]
    volumes = base * np.exp(0.3 * vol_noise + 8.0 * np.abs(returns))

    price_frames = []
    for i, a in enumerate(spec.assets):
        price_frames.append(
            pd.DataFrame(
                {
                    "date": days.date,
                    "asset": a.symbol,
                    "open": opens[i],
                    "high": highs[i],
                    "low": lows[i],
                    "close": closes[i],
                    "volume": volumes[i],
                }
            )
        )
    prices = pd.concat(price_frames, ignore_index=True)
    prices["source"] = "synthetic"

    jump_var = (
        p_market * (spec.market_jump_mean**2 + spec.market_jump_sd**2) * loadings[:, 0] ** 2
        + p_idio * spec.idio_jump_sd**2
    )
    iv_frames = []
    h = spec.iv_tenor_days
    for i, a in enumerate(spec.assets):
        if not a.has_iv:
            continue
        s2_bar = a.vol**2 / DAYS_PER_YEAR
        p = a.persistence
        avg = s2_bar + (sigma2[i, 1:] - s2_bar) * (1 - p**h) / (h * (1 - p)) + jump_var[i]
        w = rng.standard_normal(n_days)
        xi = spec.iv_spot_corr * z[i] + np.sqrt(1 - spec.iv_spot_corr**2) * w
        eta = np.empty(n_days)
        eta_prev = 0.0
        for t in range(n_days):
            eta_prev = spec.iv_noise_phi * eta_prev + spec.iv_noise_sd * xi[t]
            eta[t] = eta_prev
        iv = np.sqrt(DAYS_PER_YEAR * avg) * spec.variance_risk_premium * np.exp(eta)
        iv_frames.append(
            pd.DataFrame({"date": days.date, "asset": a.symbol, "iv": iv, "tenor_days": h})
        )
    implied_vol = pd.concat(iv_frames, ignore_index=True)
    implied_vol["source"] = "synthetic"
    conditional_vol = pd.DataFrame(
        sigma.T, index=days.date, columns=[a.symbol for a in spec.assets]
    )
    return SyntheticMarket(spec, prices, implied_vol, conditional_vol)
