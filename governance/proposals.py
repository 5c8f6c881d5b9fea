"""Proposals as code: a YAML file a committee can read, review and sign.

::

    title: Lower the ETH collateral haircut
    author: risk-team
    motivation: |
      Realised ETH volatility has fallen; a 2-day 99 % move is now below 8 %.
    changes:
      collateral.ETH.haircut: 0.08
    evidence:
      backtest_windows:
        - {name: 2022 bear market, start: 2022-01-01, end: 2022-12-31}
      models: [deribit-pm, span, var, mc-es]  # the report's backtest models (optional)
      paths: 5000                             # Monte Carlo paths a day (optional)

A rollback proposal instead names the set to return to: ``kind: rollback`` and
``rollback_to: <fingerprint>``; a policy proposal carries a whole new policy document
(``kind: policy`` and ``policy: {...}``), so that bounds, the committee and the quorum change
only by the committee's own vote. A prepared :class:`Proposal` binds the document to the set it
changes (``base_fingerprint``) and the set it produces (``proposed_fingerprint``); its
fingerprint — what members sign — covers all three, so an approval is for one exact
transition and cannot be reused after the active set has moved on.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    ValidationError,
    model_serializer,
    model_validator,
)

from governance.documents import load_document, validation_message
from governance.parameters import ParameterSet, ParameterSetError, diff
from governance.policy import Policy, PolicyError, parse_policy
from vocabulary import BACKTEST_MODELS, DEFAULT_BACKTEST_MODELS, MarginModel


class ProposalError(ValueError):
    """A proposal file that does not validate (schema, parameters or policy)."""


class _Block(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class BacktestWindow(_Block):
    name: str
    start: date
    end: date

    @model_validator(mode="after")
    def _order(self):
        if self.end < self.start:
            raise ValueError(f"window {self.name!r}: end {self.end} is before start {self.start}")
        return self


class Evidence(_Block):
    """What the proposal's report backtests: its windows, and optionally its models (the
    default: PM, SPAN and VaR) and the Monte Carlo paths a day of ``mc-var`` / ``mc-es``."""

    backtest_windows: tuple[BacktestWindow, ...] = ()
    models: tuple[str, ...] = ()
    paths: int | None = Field(default=None, ge=100, le=100_000)
    attachments: dict[str, Any] = {}  # what an automatic draft found (breaches, drift)

    @model_validator(mode="after")
    def _models(self):
        unknown = [m for m in self.models if m not in BACKTEST_MODELS]
        if unknown:
            raise ValueError(
                f"models: {', '.join(unknown)} not one of {', '.join(BACKTEST_MODELS)}"
            )
        if len(set(self.models)) != len(self.models):
            raise ValueError("models: a model is listed twice")
        if self.paths is not None and not any(MarginModel(m).simulated for m in self.models):
            raise ValueError("paths: only Monte Carlo models (mc-var, mc-es) draw paths")
        return self

    @model_serializer(mode="wrap")
    def _dump(self, handler: SerializerFunctionWrapHandler) -> dict:
        # fields added since proposals were first fingerprinted are written only when set,
        # so a proposal recorded before them keeps its fingerprint
        out = handler(self)
        if not self.models:
            out.pop("models", None)
        if self.paths is None:
            out.pop("paths", None)
        return out

    @property
    def backtest_models(self) -> tuple[str, ...]:
        """The models the report backtests."""
        return self.models or DEFAULT_BACKTEST_MODELS


class ProposalDocument(_Block):
    title: str = Field(min_length=1, max_length=200)
    author: str = Field(min_length=1, max_length=100)
    motivation: str = Field(min_length=1, max_length=20_000)
    kind: Literal["change", "rollback", "policy"] = "change"
    changes: dict[str, Any] = {}
    rollback_to: str | None = Field(default=None, pattern=r"^[0-9a-f]{64}$")
    policy: dict[str, Any] | None = None
    evidence: Evidence = Evidence()

    @model_validator(mode="after")
    def _shape(self):
        extra = {
            "changes": bool(self.changes),
            "rollback_to": self.rollback_to is not None,
            "policy": self.policy is not None,
        }
        needs = {"change": "changes", "rollback": "rollback_to", "policy": "policy"}[self.kind]
        if not extra[needs]:
            raise ValueError(f"a {self.kind} proposal needs {needs}")
        others = [k for k, present in extra.items() if present and k != needs]
        if others:
            raise ValueError(
                f"a {self.kind} proposal takes {needs} only; remove {', '.join(others)}"
            )
        return self


def parse_proposal(document: dict) -> ProposalDocument:
    try:
        return ProposalDocument.model_validate(document)
    except ValidationError as exc:
        raise ProposalError(validation_message(exc)) from exc


# what a proposal reference ending so names: a document to read, not an id
PROPOSAL_SUFFIXES = (".yaml", ".yml", ".json")


def load_proposal(path: str | Path) -> ProposalDocument:
    return load_document(path, parse_proposal, ProposalError)


@dataclass(frozen=True)
class Proposal:
    """A document bound to the transition it asks for."""

    document: ProposalDocument
    base_fingerprint: str
    proposed: ParameterSet
    policy_fingerprint: str
    proposed_policy: Policy | None = None

    @property
    def proposed_fingerprint(self) -> str:
        return self.proposed.fingerprint

    @property
    def fingerprint(self) -> str:
        payload = {
            "document": self.document.model_dump(mode="json"),
            "base": self.base_fingerprint,
            "proposed": self.proposed_fingerprint,
        }
        return hashlib.sha256(
            json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()
        ).hexdigest()

    @property
    def id(self) -> str:
        return "P-" + self.fingerprint[:12]

    def summary(self) -> dict[str, Any]:
        """What identifies the transition, for audit entries and printed payloads."""
        return {
            "fingerprint": self.fingerprint,
            "kind": self.document.kind,
            "title": self.document.title,
            "base_set": self.base_fingerprint,
            "proposed_set": self.proposed_fingerprint,
            "proposed_policy": self.proposed_policy.fingerprint if self.proposed_policy else None,
            "policy": self.policy_fingerprint,
        }

    def changes(self, base: ParameterSet) -> list:
        return diff(base, self.proposed)


def proposed_set(
    document: ProposalDocument, base: ParameterSet, rollback_target: ParameterSet | None = None
) -> ParameterSet:
    """The parameter set the document asks for, validated (errors name the path)."""
    if document.kind == "policy":
        return base
    if document.kind == "rollback":
        if rollback_target is None or rollback_target.fingerprint != document.rollback_to:
            raise ProposalError(
                f"rollback_to {document.rollback_to}: no such parameter set in the registry"
            )
        return rollback_target
    try:
        return base.with_changes(document.changes)
    except ParameterSetError as exc:
        raise ProposalError(str(exc)) from exc


def proposed_policy(document: ProposalDocument) -> Policy | None:
    """The policy a ``kind: policy`` document asks for, validated (errors name the field)."""
    if document.kind != "policy":
        return None
    try:
        policy = parse_policy(document.policy or {})
    except PolicyError as exc:
        raise ProposalError(f"policy.{exc}") from exc
    if len(policy.committee) < policy.quorum:
        raise ProposalError(
            f"policy.quorum: {policy.quorum} exceeds the committee's {len(policy.committee)} members"
        )
    return policy
