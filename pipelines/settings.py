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

Relative paths in the file are relative to the file's folder.
"""

from __future__ import annotations

import os
from datetime import date
from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from pipelines.errors import BadInputError
from pipelines.sources.synthetic import DEFAULT_SEED

DEFAULT_HOME = Path(".mwb")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SyntheticSource(_Strict):
    type: Literal["synthetic"] = "synthetic"
    seed: int = DEFAULT_SEED


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


SourceConfig = Annotated[SyntheticSource | FileSource | FolderSource, Field(discriminator="type")]


class MarketSettings(_Strict):
    assets: tuple[str, ...] = ("BTC", "ETH", "SOL")
    iv_assets: tuple[str, ...] = ("BTC", "ETH")
    expected_through: Literal["latest", "yesterday"] | date = "latest"


class WorkbenchSettings(_Strict):
    home: Path
    market: MarketSettings = MarketSettings()
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
    config_path = config or os.environ.get("MWB_CONFIG")
    if config_path is None and (home_path / "config.yaml").exists():
        config_path = home_path / "config.yaml"
    data: dict = {}
    if config_path is not None:
        config_path = Path(config_path).expanduser().resolve()
        try:
            data = yaml.safe_load(config_path.read_text()) or {}
        except FileNotFoundError as exc:
            raise BadInputError(f"{config_path}: config file not found") from exc
        except yaml.YAMLError as exc:
            raise BadInputError(f"{config_path}: not valid YAML ({exc})") from exc
        if not isinstance(data, dict):
            raise BadInputError(f"{config_path}: expected a mapping at the top level")
        for source in data.get("sources") or []:
            if isinstance(source, dict) and "path" in source:
                source["path"] = str(config_path.parent / Path(source["path"]).expanduser())
    try:
        return WorkbenchSettings(home=home_path, config_file=config_path, **data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise BadInputError(f"{config_path}: {where}: {first['msg']}") from exc
