"""Executable payloads: an approved proposal's values as calls to a risk manager's parameter
setters, in a Safe Transaction Builder batch that the committee's Safe can review and sign.

Targets are pluggable (:data:`TARGETS`); the first is Derive's PMRM 2 (``derive-pmrm2``), whose
setters are public in its contracts (derivexyz/v2-core, ``PMRMLib_2.sol`` and ``PMRM_2.sol``):
``setVolShockParams``, ``setMarginParams``, ``setBasisContingencyParams``,
``setOtherContingencyParams``, ``setSkewShockParameters`` (each one struct, fields in the
contracts' order) and ``setScenarios((uint256,uint8,uint256)[])``. Values are fixed-point with
18 decimals, except ``dteFloor`` (seconds) and the scenario's vol-shock direction (an enum:
None, Up, Down, Linear, Abs). Only the setters whose values the proposal changes are called.
Calldata is ABI-encoded with ``eth-abi``; the batch's SHA-256 (of its canonical JSON) is what
the audit log records.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from eth_abi import encode
from eth_utils import keccak

from governance.ethereum import canonical_address
from margin_engine.venues import derive

__all__ = ["Call", "PayloadError", "TARGETS", "batch_sha256", "derive_calls", "transaction_batch"]

UNIT = 10**18
TX_BUILDER_VERSION = "1.17.1"
_DIRECTION = {
    derive.VolShock.NONE: 0,
    derive.VolShock.UP: 1,
    derive.VolShock.DOWN: 2,
    derive.VolShock.LINEAR: 3,
    derive.VolShock.ABS: 4,
}


class PayloadError(ValueError):
    """A proposal that cannot become a payload (nothing to set, a value out of range)."""


@dataclass(frozen=True)
class Call:
    """One setter call: its Solidity signature, argument types and values (fixed-point
    integers) and the ABI-encoded calldata."""

    function: str  # e.g. "setMarginParams((uint256,uint256,...))"
    name: str
    types: tuple[str, ...]
    values: tuple[Any, ...]
    fields: tuple[str, ...]  # the struct's fields (one argument) or the scenario fields

    @property
    def selector(self) -> bytes:
        return keccak(text=self.function)[:4]

    @property
    def calldata(self) -> str:
        return "0x" + (self.selector + encode(list(self.types), list(self.values))).hex()


def fixed(value: float, *, signed: bool = False) -> int:
    """``value`` in 18-decimal fixed point, exactly as its shortest decimal spelling says."""
    scaled = Decimal(repr(float(value))) * UNIT
    if scaled != scaled.to_integral_value():
        raise PayloadError(f"{value!r} has more than 18 decimals")
    out = int(scaled)
    if not signed and out < 0:
        raise PayloadError(f"{value!r} is negative where the contract takes an unsigned value")
    return out


#: Each setter's struct, fields in the contracts' order (the dataclass fields' order too):
#: Solidity name and type.
_STRUCTS: dict[str, tuple[tuple[str, str], ...]] = {
    "setVolShockParams": (
        ("volRangeUp", "uint256"),
        ("volRangeDown", "uint256"),
        ("shortTermPower", "int256"),
        ("longTermPower", "int256"),
        ("dteFloor", "uint256"),
        ("minVolUpShock", "uint256"),
    ),
    "setMarginParams": tuple(
        (n, "uint256")
        for n in (
            "imFactor",
            "mmFactor",
            "shortRateMultScale",
            "longRateMultScale",
            "shortRateAddScale",
            "longRateAddScale",
            "shortBaseStaticDiscount",
            "longBaseStaticDiscount",
        )
    ),
    "setBasisContingencyParams": tuple(
        (n, "uint256")
        for n in ("scenarioSpotUp", "scenarioSpotDown", "basisContAddFactor", "basisContMultFactor")
    ),
    "setOtherContingencyParams": tuple(
        (n, "uint256")
        for n in (
            "pegLossThreshold",
            "pegLossFactor",
            "confThreshold",
            "confMargin",
            "MMPerpPercent",
            "IMPerpPercent",
            "MMOptionPercent",
            "IMOptionPercent",
        )
    ),
    "setSkewShockParameters": (
        ("linearBaseCap", "uint256"),
        ("absBaseCap", "uint256"),
        ("linearCBase", "int256"),
        ("absCBase", "int256"),
        ("minKStar", "int256"),
        ("widthScale", "int256"),
        ("volParamStatic", "int256"),
        ("volParamScale", "int256"),
    ),
}
_SECONDS = frozenset({"dteFloor"})  # in seconds, not fixed point


def _struct_call(name: str, params: Any) -> Call:
    """``name``'s call with the dataclass ``params`` as its one struct argument."""
    solidity = _STRUCTS[name]
    values = tuple(
        int(round(getattr(params, f.name)))
        if field in _SECONDS
        else fixed(getattr(params, f.name), signed=kind == "int256")
        for f, (field, kind) in zip(dataclasses.fields(params), solidity, strict=True)
    )
    types = "(" + ",".join(t for _, t in solidity) + ")"
    return Call(f"{name}({types})", name, (types,), (values,), tuple(f for f, _ in solidity))


def _scenarios(scenarios: tuple[derive.Scenario, ...]) -> Call:
    values = tuple(
        (fixed(s.spot_shock), _DIRECTION[s.vol_shock], fixed(s.dampening)) for s in scenarios
    )
    return Call(
        "setScenarios((uint256,uint8,uint256)[])",
        "setScenarios",
        ("(uint256,uint8,uint256)[]",),
        (values,),
        ("spotShock", "volShock", "dampeningFactor"),
    )


def derive_calls(old: derive.DeriveParams | None, new: derive.DeriveParams) -> list[Call]:
    """The setter calls that take Derive's PMRM 2 from ``old`` to ``new`` (all of them when
    ``old`` is None), in a fixed order."""
    blocks = (
        ("vol_shock", "setVolShockParams"),
        ("margin", "setMarginParams"),
        ("basis", "setBasisContingencyParams"),
        ("contingency", "setOtherContingencyParams"),
        ("skew", "setSkewShockParameters"),
    )
    calls = []
    for attribute, setter in blocks:
        value = getattr(new, attribute)
        if old is None or getattr(old, attribute) != value:
            calls.append(_struct_call(setter, value))
    if old is None or old.scenarios != new.scenarios:
        calls.append(_scenarios(new.scenarios))
    return calls


TARGETS = {"derive-pmrm2": derive_calls}


def transaction_batch(
    calls: list[Call],
    *,
    to: str,
    chain_id: int,
    safe: str | None,
    name: str,
    description: str,
) -> dict[str, Any]:
    """The Safe Transaction Builder's batch JSON (version 1.0): one transaction per call to
    ``to``, each with its calldata and its method and inputs for the builder's review screen."""
    target = canonical_address(to)
    transactions = []
    for call in calls:
        inputs = [{"internalType": t, "name": "_params", "type": t} for t in call.types]
        transactions.append(
            {
                "to": target,
                "value": "0",
                "data": call.calldata,
                "contractMethod": {"inputs": inputs, "name": call.name, "payable": False},
                "contractInputsValues": None,
            }
        )
    return {
        "version": "1.0",
        "chainId": str(chain_id),
        "createdAt": 0,  # reproducible: the batch's hash must not change with the clock
        "meta": {
            "name": name,
            "description": description,
            "txBuilderVersion": TX_BUILDER_VERSION,
            "createdFromSafeAddress": canonical_address(safe) if safe else "",
            "createdFromOwnerAddress": "",
        },
        "transactions": transactions,
    }


def batch_sha256(batch: dict[str, Any]) -> str:
    """The batch's identity: SHA-256 of its canonical JSON."""
    return hashlib.sha256(
        json.dumps(batch, sort_keys=True, separators=(",", ":")).encode()
    ).hexdigest()


def readable_diff(old: derive.DeriveParams | None, new: derive.DeriveParams) -> list[str]:
    """Each changed value as ``block.field: old → new`` (contract units as well)."""
    lines = []
    for block in ("vol_shock", "margin", "basis", "contingency", "skew"):
        before = None if old is None else dataclasses.asdict(getattr(old, block))
        after = dataclasses.asdict(getattr(new, block))
        for key, value in after.items():
            if before is None or before[key] != value:
                was = "—" if before is None else f"{before[key]!r}"
                lines.append(f"{block}.{key}: {was} → {value!r}")
    if old is None or old.scenarios != new.scenarios:
        lines.append(f"scenarios: {len(new.scenarios)} scenario(s) set")
    return lines
