"""The governance policy: parameter bounds, the committee, quorum and cool-downs.

A policy document::

    bounds:                                   # dotted paths; * matches one path segment
      underlyings.*.pm.price_range: {min: 0.05, max: 0.40, max_change: 0.25, change: relative}
      collateral.*.haircut:         {min: 0.0,  max: 0.50, max_change: 0.05, change: absolute}
    committee:
      - {name: alice, public_key: <base64 Ed25519 raw public key>}
    quorum: 2
    cooldown_days: 7                          # between two changes of the same parameter
    drift_tolerance: {underlyings.*.pm.price_range: 0.15}   # relative, for drift triggers
    rollback: {max_breaches: 3, window_days: 30}

A change outside ``[min, max]`` or larger than ``max_change`` (absolute difference, or relative
to the current value) is refused with a message naming the parameter, the value and the bound.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from governance.documents import load_document, validation_message
from governance.signing import public_key_bytes


class PolicyError(ValueError):
    """A policy document that does not validate."""


class _Block(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Bound(_Block):
    min: float | None = None
    max: float | None = None
    max_change: float | None = Field(default=None, ge=0)
    change: Literal["absolute", "relative"] = "absolute"

    @model_validator(mode="after")
    def _ordered(self):
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min {self.min} is above max {self.max}")
        return self


class Member(_Block):
    # a name is also a key file's name: no leading dot (no hidden files, no "..")
    name: str = Field(pattern=r"^[A-Za-z0-9_-][A-Za-z0-9_.-]{0,63}$")
    public_key: str  # canonical base64 of the 32-byte raw Ed25519 public key

    @field_validator("public_key")
    @classmethod
    def _key(cls, value: str) -> str:
        public_key_bytes(value)  # canonical base64 of 32 bytes, or a precise error
        return value

    @property
    def key_bytes(self) -> bytes:
        """The identity of the member: the raw key bytes."""
        return public_key_bytes(self.public_key)


class RollbackRule(_Block):
    max_breaches: int = Field(default=3, ge=0)
    window_days: int = Field(default=30, ge=1)


class GateRules(_Block):
    """Optional rules of the enactment gate, beyond coverage (off unless a policy sets them)."""

    # block when the proposed set leaves more bad debt than the current one: a stress
    # window's cascade, or the 99 % bad-debt VaR over simulated paths
    bad_debt_not_worse: bool = False
    # shadow days required before enactment, without a breach the set in force did not have
    # (0: none); ``shadow_default_days`` is how long `mwb shadow start` runs when not told
    shadow_days: int = Field(default=0, ge=0, le=366)
    shadow_default_days: int = Field(default=30, ge=1, le=366)


class Policy(_Block):
    bounds: dict[str, Bound] = {}
    committee: tuple[Member, ...] = ()
    quorum: int = Field(default=1, ge=1)
    cooldown_days: float = Field(default=7.0, ge=0)
    drift_tolerance: dict[str, float] = {}
    rollback: RollbackRule = RollbackRule()
    gate: GateRules = GateRules()

    @model_validator(mode="after")
    def _committee(self):
        names = [m.name for m in self.committee]
        if len(set(names)) != len(names):
            raise ValueError("committee member names must be unique")
        keys = [m.key_bytes for m in self.committee]
        if len(set(keys)) != len(keys):
            twice = [m.name for m in self.committee if keys.count(m.key_bytes) > 1]
            raise ValueError(
                f"one public key fills several committee seats ({', '.join(twice)}): one key, one seat"
            )
        if self.committee and self.quorum > len(self.committee):
            raise ValueError(
                f"quorum {self.quorum} exceeds the committee's {len(self.committee)} members"
            )
        return self

    @property
    def fingerprint(self) -> str:
        document = self.model_dump(mode="json")
        # a policy that leaves the gate's rules at their defaults keeps the fingerprint it had
        # before the rules existed (proposals and votes refer to it)
        if document["gate"] == GateRules().model_dump(mode="json"):
            del document["gate"]
        canonical = json.dumps(document, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()

    def member(self, name: str) -> Member | None:
        return next((m for m in self.committee if m.name == name), None)

    def member_with_key(self, key: bytes) -> Member | None:
        """The member whose raw public key is ``key`` (identities are bytes, not spellings)."""
        return next((m for m in self.committee if m.key_bytes == key), None)

    def bound_for(self, path: str) -> tuple[str, Bound] | None:
        """The most specific bound whose pattern matches ``path`` (fewest wildcards)."""
        matches = [(p, b) for p, b in self.bounds.items() if fnmatchcase(path, p)]
        if not matches:
            return None
        return min(matches, key=lambda pb: (pb[0].count("*"), pb[0]))

    def tolerance_for(self, path: str) -> float | None:
        matches = [(p, t) for p, t in self.drift_tolerance.items() if fnmatchcase(path, p)]
        return min(matches, key=lambda pt: pt[0].count("*"))[1] if matches else None


@dataclass(frozen=True)
class Violation:
    path: str
    value: Any
    bound: str
    message: str


def check_change(policy: Policy, path: str, old: Any, new: Any) -> Violation | None:
    """Whether changing ``path`` from ``old`` to ``new`` respects the policy's bound for it."""
    found = policy.bound_for(path)
    if found is None or not isinstance(new, int | float) or isinstance(new, bool):
        return None
    pattern, bound = found
    if not math.isfinite(new):
        return Violation(path, new, pattern, f"{path} = {new} is not a finite number")
    if bound.min is not None and new < bound.min:
        return Violation(
            path, new, pattern, f"{path} = {new:g} is below the minimum {bound.min:g} ({pattern})"
        )
    if bound.max is not None and new > bound.max:
        return Violation(
            path, new, pattern, f"{path} = {new:g} is above the maximum {bound.max:g} ({pattern})"
        )
    if bound.max_change is not None and isinstance(old, int | float) and not isinstance(old, bool):
        if bound.change == "relative":
            size = abs(new - old) / abs(old) if old else math.inf
            allowed = f"{bound.max_change:.0%} of {old:g}"
        else:
            size = abs(new - old)
            allowed = f"{bound.max_change:g}"
        if size > bound.max_change + 1e-12:
            return Violation(
                path,
                new,
                pattern,
                f"{path}: {old:g} -> {new:g} changes by more than the allowed {allowed} in one proposal ({pattern})",
            )
    return None


DEFAULT_POLICY_DOCUMENT: dict = {
    "bounds": {
        "underlyings.*.pm.price_range": {
            "min": 0.05,
            "max": 0.40,
            "max_change": 0.25,
            "change": "relative",
        },
        "underlyings.*.pm.vol_range_up": {
            "min": 0.10,
            "max": 2.0,
            "max_change": 0.5,
            "change": "relative",
        },
        "underlyings.*.pm.vol_range_down": {
            "min": 0.05,
            "max": 0.75,
            "max_change": 0.5,
            "change": "relative",
        },
        "underlyings.*.span.price_scan_range": {
            "min": 0.05,
            "max": 0.40,
            "max_change": 0.25,
            "change": "relative",
        },
        "underlyings.*.span.extreme_move_multiple": {"min": 1.0, "max": 10.0},
        "collateral.*.haircut": {"min": 0.0, "max": 0.50, "max_change": 0.05, "change": "absolute"},
        "spreads.*.credit": {"min": 0.0, "max": 0.80, "max_change": 0.15, "change": "absolute"},
        "pm.mm_factor": {"min": 0.5, "max": 1.0, "max_change": 0.1, "change": "absolute"},
    },
    "committee": [],
    "quorum": 2,
    "cooldown_days": 7,
    "drift_tolerance": {
        "underlyings.*.pm.price_range": 0.15,
        "underlyings.*.pm.vol_range_up": 0.25,
        "collateral.*.haircut": 0.20,
    },
    "rollback": {"max_breaches": 3, "window_days": 30},
}


def parse_policy(document: dict) -> Policy:
    try:
        return Policy.model_validate(document)
    except ValidationError as exc:
        raise PolicyError(validation_message(exc)) from exc


def default_policy() -> Policy:
    """Bounds for the parameters committees change most; no committee (add members first)."""
    return parse_policy(json.loads(json.dumps(DEFAULT_POLICY_DOCUMENT)))


def load_policy(path: str | Path) -> Policy:
    return load_document(path, parse_policy, PolicyError)
