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
from governance.signing import public_key_bytes, verify


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
    # canonical base64 of the 32-byte raw Ed25519 public key, and/or an Ethereum address
    public_key: str | None = None
    address: str | None = None

    @field_validator("public_key")
    @classmethod
    def _key(cls, value: str | None) -> str | None:
        if value is not None:
            public_key_bytes(value)  # canonical base64 of 32 bytes, or a precise error
        return value

    @field_validator("address")
    @classmethod
    def _address(cls, value: str | None) -> str | None:
        if value is None:
            return None
        from governance.ethereum import EthereumError, canonical_address

        try:
            return canonical_address(value)  # one spelling per 20 bytes
        except EthereumError as exc:
            raise ValueError(str(exc)) from None

    @model_validator(mode="after")
    def _identity(self):
        if self.public_key is None and self.address is None:
            raise ValueError(f"member {self.name}: give a public_key (Ed25519) or an address")
        return self

    @property
    def key_bytes(self) -> bytes:
        """The identity of the member: the raw Ed25519 key bytes, else the address's bytes."""
        if self.public_key is not None:
            return public_key_bytes(self.public_key)
        from governance.ethereum import address_bytes

        assert self.address is not None  # the validator asks for one of the two
        return b"eth:" + address_bytes(self.address)

    @property
    def address_key(self) -> bytes | None:
        """The 20 bytes of the member's Ethereum address, if any."""
        if self.address is None:
            return None
        from governance.ethereum import address_bytes

        return address_bytes(self.address)


class EthereumRules(_Block):
    """What a wallet vote signs besides the proposal: the chain and the committee's name."""

    chain_id: int = Field(ge=1, le=2**63)
    committee: str = Field(min_length=1, max_length=100)


class SafeCommittee(_Block):
    """A Safe multisig as the committee: its owners are the members, its threshold the quorum."""

    address: str
    owners: tuple[str, ...] = Field(min_length=1, max_length=50)
    threshold: int = Field(ge=1)

    @field_validator("address")
    @classmethod
    def _safe_address(cls, value: str) -> str:
        from governance.ethereum import EthereumError, canonical_address

        try:
            return canonical_address(value)
        except EthereumError as exc:
            raise ValueError(str(exc)) from None

    @field_validator("owners")
    @classmethod
    def _owners(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        from governance.ethereum import EthereumError, canonical_address

        try:
            owners = tuple(canonical_address(v) for v in value)
        except EthereumError as exc:
            raise ValueError(str(exc)) from None
        twice = sorted({o for o in owners if owners.count(o) > 1})
        if twice:
            raise ValueError(f"an owner is listed twice: {', '.join(twice)}")
        return owners

    @model_validator(mode="after")
    def _threshold(self):
        if self.threshold > len(self.owners):
            raise ValueError(f"threshold {self.threshold} exceeds the {len(self.owners)} owners")
        return self


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
    ethereum: EthereumRules | None = None
    safe: SafeCommittee | None = None

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
        if any(m.address for m in self.committee) and self.ethereum is None:
            raise ValueError(
                "members with Ethereum addresses need `ethereum: {chain_id, committee}`: "
                "what their votes sign"
            )
        if self.safe is not None:
            addresses = sorted(m.address for m in self.committee if m.address)
            if addresses != sorted(self.safe.owners) or len(addresses) != len(self.committee):
                raise ValueError(
                    "a Safe committee's members are its owners: one member per owner address"
                )
            if self.quorum != self.safe.threshold:
                raise ValueError(
                    f"a Safe committee's quorum is its threshold ({self.safe.threshold}), "
                    f"not {self.quorum}"
                )
        if self.committee and self.quorum > len(self.committee):
            raise ValueError(
                f"quorum {self.quorum} exceeds the committee's {len(self.committee)} members"
            )
        return self

    @property
    def fingerprint(self) -> str:
        document = self.model_dump(mode="json")
        # a policy that leaves the gate's rules at their defaults, has no wallet members and
        # no Safe keeps the fingerprint it had before these existed (proposals refer to it)
        if document["gate"] == GateRules().model_dump(mode="json"):
            del document["gate"]
        for optional in ("ethereum", "safe"):
            if document[optional] is None:
                del document[optional]
        for member in document["committee"]:
            for key in ("public_key", "address"):
                if member[key] is None:
                    del member[key]
        canonical = json.dumps(document, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()

    def member(self, name: str) -> Member | None:
        return next((m for m in self.committee if m.name == name), None)

    def signature_verifies(
        self, member: Member, signature: str, decision: str, fingerprint: str
    ) -> bool:
        """Whether ``signature`` is ``member``'s ``decision`` of ``fingerprint``: an Ed25519
        signature (base64) by their key, or a wallet signature (``0x…``, EIP-712 or EIP-191)
        recovering to their address under this policy's chain id and committee."""
        if signature.startswith("0x"):
            if member.address_key is None or self.ethereum is None:
                return False
            from governance.ethereum import eth_verifies

            return eth_verifies(
                member.address_key,
                signature,
                decision,
                fingerprint,
                self.ethereum.chain_id,
                self.ethereum.committee,
            )
        if member.public_key is None:
            return False
        return verify(member.public_key, signature, decision, fingerprint)  # type: ignore[arg-type]

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
