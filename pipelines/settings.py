"""Where the workbench keeps its files and what it loads: ``$MWB_HOME`` and its ``config.yaml``.

``MWB_HOME`` (default ``./.mwb``) holds the warehouse (``warehouse.duckdb``), generated datasets
and reports. ``config.yaml`` there — or the file named by ``MWB_CONFIG`` — may set::

    market:
      assets: [BTC, ETH, SOL]        # series the coverage checks expect
      iv_assets: [BTC, ETH]
      expected_through: latest       # latest | yesterday | YYYY-MM-DD
    sources:                         # what the market-data assets load, in order
      - type: synthetic
        seed: 2
      - type: file
        path: ../shared/data/prices/binance_spot_daily.csv
        source: binance
      - type: folder
        path: ~/market-drops
      - type: deribit                # the live public API (see pipelines/sources/deribit.py)
        currencies: [BTC, ETH]
        option_chain: true
    compute:                         # where Monte Carlo chunks run (Dask distributed)
      scheduler: local               # a LocalCluster per command, or tcp://host:8786
      workers: 2                     # local only; default one per core
      chunks: 8                      # tasks per Monte Carlo margin (never changes a number)

Relative paths in the file are relative to the file's folder.

Environment variables override the file: ``MWB__`` followed by the setting's path with ``__``
between levels, the value read as YAML — ``MWB__market__assets='[BTC, ETH]'``,
``MWB__sources__2__base_url=http://127.0.0.1:8080/api/v2`` (list items by index). A variable
naming an item past the end of a list appends it, so ``MWB__sources__0__type=deribit`` alone
configures a Deribit-only workbench when the file has no sources.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from datetime import date
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from governance.documents import DocumentError, load_yaml, parse_yaml
from pipelines.errors import BadInputError
from vocabulary import SYNTHETIC_SEED

DEFAULT_HOME = Path(".mwb")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SyntheticSource(_Strict):
    type: Literal["synthetic"] = "synthetic"
    seed: int = SYNTHETIC_SEED


class FileSource(_Strict):
    type: Literal["file"] = "file"
    path: Path
    format: str | None = None
    kind: str | None = None
    source: str | None = None
    asset: str | None = None


class FolderSource(_Strict):
    """Every ``*.csv``, ``*.csv.gz``, ``*.parquet`` and ``*.json`` file in a folder."""

    type: Literal["folder"] = "folder"
    path: Path
    source: str | None = None


class DeribitSource(_Strict):
    """Deribit's public API: daily index (perpetual) bars, DVOL and optionally the live option
    chain. A partitioned run fetches its days; an unpartitioned one the last ``history_days``."""

    type: Literal["deribit"] = "deribit"
    base_url: str = "https://www.deribit.com/api/v2"
    currencies: tuple[str, ...] = ("BTC", "ETH")
    history_days: int = Field(default=30, ge=1)
    option_chain: bool = False
    timeout_seconds: float = Field(default=10.0, gt=0)
    max_attempts: int = Field(default=3, ge=1)
    backoff_seconds: float = Field(default=0.5, ge=0)
    requests_per_second: float = Field(default=5.0, gt=0)
    page_days: int = Field(default=365, ge=1)
    source: str = "deribit"


SourceConfig = Annotated[
    SyntheticSource | FileSource | FolderSource | DeribitSource, Field(discriminator="type")
]


class MarketSettings(_Strict):
    assets: tuple[str, ...] = ("BTC", "ETH", "SOL")
    iv_assets: tuple[str, ...] = ("BTC", "ETH")
    expected_through: Literal["latest", "yesterday"] | date = "latest"
    # when an asset has rows from several sources, calibration uses the first listed here
    # (sources not listed come after, alphabetically)
    source_preference: tuple[str, ...] = ("deribit", "binance", "file", "synthetic", "arch")


DEFAULT_BOUNDS: dict[str, tuple[float | None, float | None]] = {
    "underlyings.*.pm.price_range": (0.03, 0.50),
    "underlyings.*.span.price_scan_range": (0.03, 0.50),
    "underlyings.*.span.extreme_move_multiple": (1.0, 10.0),
    "underlyings.*.pm.vol_range_up": (0.05, 2.0),
    "underlyings.*.pm.vol_range_down": (0.05, 0.9),
    "underlyings.*.span.vol_scan_range": (0.05, 2.0),
    "collateral.*.haircut": (0.0, 0.9),
    "spreads.*.credit": (0.0, 0.9),
}


class CalibrationSettings(_Strict):
    """The calibration policy (see :class:`calibration.policy.CalibrationPolicy`), the model
    candidates (``all`` or names like ``gjr-garch/t``) and sanity bounds per parameter
    pattern for the recommendation check."""

    confidence: float = 0.99
    mpor_days: int = 2
    haircut_mpor_days: int = 2
    lookback_days: int = 1000
    method: Literal["filtered-historical", "parametric"] = "filtered-historical"
    apc: Literal["none", "buffer", "stressed-weight", "floor"] = "buffer"
    apc_buffer: float = 0.25
    apc_stress_weight: float = 0.25
    apc_floor_years: float = 10.0
    extreme_confidence: float = 0.999
    dcc_boundary: Literal["ewma", "cap"] = "ewma"
    dcc_persistence_cap: float = 0.99
    candidates: Literal["all"] | tuple[str, ...] = "all"
    bounds: dict[str, tuple[float | None, float | None]] = DEFAULT_BOUNDS

    def policy(self):
        from calibration.policy import CalibrationPolicy

        fields = self.model_dump(exclude={"candidates", "bounds"})
        try:
            return CalibrationPolicy(**fields)
        except ValueError as exc:
            raise BadInputError(f"calibration settings: {exc}") from exc

    def specs(self):
        from calibration.univariate import ALL_SPECS, UnivariateSpec

        if self.candidates == "all":
            return ALL_SPECS
        specs = []
        for name in self.candidates:
            vol, _, dist = name.partition("/")
            try:
                specs.append(UnivariateSpec(vol, dist or "t"))
            except ValueError as exc:
                raise BadInputError(f"calibration.candidates: {name!r}: {exc}") from exc
        return tuple(specs)


class ComputeSettings(_Strict):
    """Where Monte Carlo chunks (and later sweep points) run: ``local`` starts a Dask
    ``LocalCluster`` of processes for the command and closes it after; ``tcp://host:port`` uses
    a running Dask scheduler. ``workers`` (local only) defaults to one per core; ``chunks`` is
    how many tasks a Monte Carlo margin is split into (it never changes a number)."""

    scheduler: str = "local"
    workers: int | None = Field(default=None, ge=1, le=512)
    chunks: int = Field(default=8, ge=1, le=4096)
    connect_seconds: float = Field(default=10.0, gt=0, le=600)  # to reach a remote scheduler

    @field_validator("scheduler")
    @classmethod
    def _address(cls, value: str) -> str:
        if value == "local" or re.fullmatch(r"(tcp|tls)://[A-Za-z0-9_.\-\[\]:]+:\d{1,5}", value):
            return value
        raise ValueError(f"{value!r}: 'local' or a scheduler address such as tcp://host:8786")


class WorkbenchSettings(_Strict):
    home: Path
    market: MarketSettings = MarketSettings()
    calibration: CalibrationSettings = CalibrationSettings()
    compute: ComputeSettings = ComputeSettings()
    sources: tuple[SourceConfig, ...] = (SyntheticSource(),)
    config_file: Path | None = None

    @property
    def warehouse_path(self) -> Path:
        return self.home / "warehouse.duckdb"

    @property
    def datasets_dir(self) -> Path:
        return self.home / "datasets"


def resolve_home(home: str | Path | None = None) -> Path:
    return Path(home or os.environ.get("MWB_HOME") or DEFAULT_HOME).expanduser().resolve()


def load_settings(
    home: str | Path | None = None, config: str | Path | None = None
) -> WorkbenchSettings:
    """Settings from ``MWB_HOME``/``MWB_CONFIG`` (or the arguments) and the config file."""
    home_path = resolve_home(home)
    if home_path.exists() and not home_path.is_dir():
        raise BadInputError(f"{home_path}: MWB_HOME is a file, not a folder")
    config_path = config or os.environ.get("MWB_CONFIG")
    if config_path is None and (home_path / "config.yaml").exists():
        config_path = home_path / "config.yaml"
    data: dict = {}
    if config_path is not None:
        config_path = Path(config_path).expanduser().resolve()
        try:
            data = load_yaml(config_path)
        except DocumentError as exc:
            raise BadInputError(
                str(exc).replace(": no such file", ": config file not found")
            ) from None
        data = {} if data is None else data
        if not isinstance(data, dict):
            raise BadInputError(f"{config_path}: expected a mapping at the top level")
        for source in data.get("sources") or []:
            if isinstance(source, dict) and "path" in source:
                source["path"] = str(config_path.parent / Path(source["path"]).expanduser())
    data = apply_env_overrides(data, os.environ)
    try:
        return WorkbenchSettings(home=home_path, config_file=config_path, **data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        source = config_path or "settings (MWB__ variables)"
        raise BadInputError(f"{source}: {where}: {first['msg']}") from exc


ENV_PREFIX = "MWB__"


def apply_env_overrides(data: dict, environ: Mapping[str, str]) -> dict:
    """``data`` with every ``MWB__a__b__0__c=value`` variable applied (value parsed as YAML).

    ``sources`` not given in the file start from the default list, so an override can address
    ``MWB__sources__0__seed``."""
    names = sorted(k for k in environ if k.startswith(ENV_PREFIX) and len(k) > len(ENV_PREFIX))
    if not names:
        return data
    out = json.loads(json.dumps(data, default=str))
    for name in names:
        path = name[len(ENV_PREFIX) :].split("__")
        if path[0] == "sources" and "sources" not in out:
            out["sources"] = [{"type": "synthetic"}]
        try:
            value = parse_yaml(environ[name], name)
        except DocumentError as exc:
            raise BadInputError(str(exc)) from None
        node: Any = out
        for i, part in enumerate(path):
            last = i == len(path) - 1
            if isinstance(node, list):
                if not part.isdigit():
                    raise BadInputError(f"{name}: {part!r} must be a list index")
                index = int(part)
                if index > len(node):
                    raise BadInputError(
                        f"{name}: index {index} skips items (the list has {len(node)})"
                    )
                if index == len(node):
                    node.append(value if last else {})
                elif last:
                    node[index] = value
                node = node[index]
            elif isinstance(node, dict):
                if last:
                    node[part] = value
                else:
                    node = node.setdefault(part, {})
            else:
                raise BadInputError(f"{name}: cannot set {part!r} inside a {type(node).__name__}")
    return out
