"""Reconciling the registry's state tables with its audit log, as pure functions over rows.

The log is the record of what happened; every row a command shows (sets, policies, proposals,
votes, activations, statuses) must be what the log says, and every row remembers the hash of
the entry it was written with. :func:`state_problems` lists each disagreement in words a
committee can act on; :func:`rewritten` names where a re-hashed log first differs from what the
rows remember. Nothing here reads the database: :mod:`governance.registry` hands the rows in.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from governance.audit import AuditEntry, timestamp
from governance.parameters import parse_parameter_set
from governance.policy import parse_policy
from governance.proposals import Proposal, parse_proposal
from governance.workflow import Status

Link = tuple[str, str, int, str]  # table, row key, audit seq, audit hash


@dataclass(frozen=True)
class _Fingerprinted:
    """A stand-in for a stored parameter set: a proposal's fingerprint needs only its key."""

    fingerprint: str


@dataclass(frozen=True)
class StateRows:
    """What the state tables hold, as the store reads them."""

    documents: Mapping[str, Sequence[tuple[str, str]]]  # table -> (fingerprint, document)
    proposals: Sequence[tuple]  # the full proposal rows, with documents
    links: Sequence[Link]
    activations: Sequence[tuple[str, str, str, str | None, int]]  # set, policy, from, id, seq
    votes: Sequence[tuple]  # proposal, member, decision, signature, reason, time, seq
    statuses: Mapping[str, str]


def utc(at: datetime) -> str:
    """``at`` as the log writes times (a naive time is UTC)."""
    return timestamp(at) if at.tzinfo is not None else timestamp(at.replace(tzinfo=UTC))


def rewritten(entries: Sequence[AuditEntry], links: Iterable[Link]) -> tuple[int, str] | None:
    """The first entry whose hash differs from the one a state row was written with."""
    by_seq = {e.seq: e for e in entries}
    for table, key, seq, recorded in links:
        entry = by_seq.get(seq)
        if entry is None:
            return seq, f"gov.{table} {key} cites it, and it is gone"
        if entry.hash != recorded:
            return seq, (
                f"gov.{table} {key} was written with hash {recorded[:16]}…, the entry now "
                f"hashes to {entry.hash[:16]}…"
            )
    return None


@dataclass
class _Expected:
    """What the log says the state tables hold."""

    activations: list[tuple[str, str, str, str | None, int]]
    votes: set[tuple]
    status: dict[str, str]
    submitted: dict[str, AuditEntry]
    updated: dict[str, datetime]
    enacted_from: dict[str, str]
    rolled_back_by: dict[str, str]


def _replay(entries: Iterable[AuditEntry]) -> _Expected:
    expected = _Expected([], set(), {}, {}, {}, {}, {})
    for e in entries:
        d = e.details
        if e.action in ("initialised", "enacted"):
            expected.activations.append(
                (
                    d["parameter_set"],
                    d["policy"],
                    d["effective_from"],
                    None if e.action == "initialised" else e.subject,
                    e.seq,
                )
            )
        before = expected.status.get(e.subject)
        if e.action in ("approved", "rejected"):
            expected.votes.add(
                (
                    e.subject,
                    d["member"],
                    d["decision"],
                    d["signature"],
                    d.get("reason", ""),
                    utc(e.at),
                    e.seq,
                )
            )
            expected.status[e.subject] = d["status"]
        elif e.action in ("submitted", "drafted"):
            expected.status[e.subject] = (
                Status.SUBMITTED.value if e.action == "submitted" else Status.DRAFT.value
            )
            expected.submitted.setdefault(e.subject, e)
        elif e.action == "enacted":
            expected.status[e.subject] = Status.ENACTED.value
            expected.enacted_from[e.subject] = d["effective_from"]
        elif e.action == "rolled_back":
            expected.status[e.subject] = Status.ROLLED_BACK.value
            expected.rolled_back_by[e.subject] = d["by"]
        if expected.status.get(e.subject) != before:
            expected.updated[e.subject] = e.at
    return expected


def _document_problems(documents: Mapping[str, Sequence[tuple[str, str]]]) -> list[str]:
    problems = []
    parsers: dict[str, Callable[[Any], Any]] = {
        "parameter_sets": parse_parameter_set,
        "policies": parse_policy,
    }
    for table, parse in parsers.items():
        for key, document in documents.get(table, ()):
            try:
                actual = parse(json.loads(document)).fingerprint
            except ValueError as exc:
                problems.append(f"gov.{table} {key[:12]}…: no longer a valid document ({exc})")
                continue
            if actual != key:
                problems.append(
                    f"gov.{table} {key[:12]}…: content altered (hashes to {actual[:12]}…)"
                )
    return problems


def proposal_problems(rows: Iterable[tuple], expected: _Expected) -> list[str]:
    """Every field ``mwb proposals`` shows is the document's (which hashes to the fingerprint
    the log recorded) or what the log says happened."""
    problems = []
    for (
        pid,
        fingerprint,
        kind,
        title,
        author,
        document_json,
        base_set,
        proposed_set,
        proposed_policy_fp,
        policy_fp,
        created_by,
        created_at,
        updated_at,
        effective_from,
        rolled_back,
    ) in rows:
        entry = expected.submitted.get(pid)
        if entry is None:
            problems.append(f"gov.proposals {pid}: no submission in the audit log")
            continue
        try:
            document = parse_proposal(json.loads(document_json))
        except (ValueError, TypeError) as exc:
            problems.append(f"gov.proposals {pid}: the stored document is not valid ({exc})")
            continue
        digest = Proposal(
            document,
            base_set,
            _Fingerprinted(proposed_set),  # type: ignore[arg-type]  # only its key is read
            policy_fp,
        ).fingerprint
        logged = entry.details
        shown = {
            "fingerprint": (fingerprint, logged.get("fingerprint")),
            "document": (digest, logged.get("fingerprint")),
            "id": (pid, "P-" + str(logged.get("fingerprint", ""))[:12]),
            "kind": (kind, logged.get("kind")),
            "title": (title, logged.get("title")),
            "author": (author, document.author),
            "base_set": (base_set, logged.get("base_set")),
            "proposed_set": (proposed_set, logged.get("proposed_set")),
            "proposed_policy": (proposed_policy_fp, logged.get("proposed_policy")),
            "policy": (policy_fp, logged.get("policy")),
            "created_by": (created_by, entry.actor),
            "created_at": (utc(created_at), utc(entry.at)),
            "updated_at": (utc(updated_at), utc(expected.updated.get(pid, entry.at))),
            "effective_from": (
                effective_from.isoformat() if effective_from else None,
                expected.enacted_from.get(pid),
            ),
            "rolled_back_by": (rolled_back, expected.rolled_back_by.get(pid)),
        }
        if document.title != title or document.kind != kind:
            problems.append(f"gov.proposals {pid}: title or kind differs from its document")
        for name, (have, want) in shown.items():
            if name == "effective_from" and have is not None and want is not None:
                have, want = (
                    utc(datetime.fromisoformat(have)),
                    utc(datetime.fromisoformat(want)),
                )
            if have != want:
                problems.append(
                    f"gov.proposals {pid}: {name} {str(have)[:24]!r} differs from the audit "
                    f"log ({str(want)[:24]!r})"
                )
    return problems


def _activation_key(row: tuple) -> tuple:
    parameter_set, policy, effective_from, proposal_id, audit_seq = row
    return parameter_set, policy, datetime.fromisoformat(effective_from), proposal_id, audit_seq


def state_problems(entries: Sequence[AuditEntry], rows: StateRows) -> list[str]:
    """Every way the state tables disagree with the (verified) audit log ``entries``."""
    problems = _document_problems(rows.documents)
    expected = _replay(entries)
    problems += proposal_problems(rows.proposals, expected)
    by_seq = {e.seq: e for e in entries}
    for table, key, seq, recorded in rows.links:
        entry = by_seq.get(seq)
        if entry is None or entry.hash != recorded:
            problems.append(
                f"gov.{table} {key} was written with audit entry {seq} ({recorded[:16]}…), "
                "which the log no longer holds"
            )
    fields = ("parameter_set", "policy", "effective_from", "proposal_id", "audit_seq")
    for i, (want, have) in enumerate(
        zip(expected.activations, rows.activations, strict=False), start=1
    ):
        differing = [
            f"{name} {h!s:.16} (the log says {w!s:.16})"
            for name, w, h in zip(fields, _activation_key(want), _activation_key(have), strict=True)
            if w != h
        ]
        if differing:
            problems.append(
                f"gov.activations row {i} differs from audit entry {want[4]}: {'; '.join(differing)}"
            )
            break
    if len(rows.activations) != len(expected.activations):
        problems.append(
            f"gov.activations has {len(rows.activations)} rows; the audit log records "
            f"{len(expected.activations)} activations"
        )
    votes = {(p, m, d, sig, reason, utc(at), seq) for p, m, d, sig, reason, at, seq in rows.votes}
    for extra in sorted(votes - expected.votes, key=str):
        problems.append(
            f"gov.approvals row ({extra[0]}, {extra[1]}, {extra[2]}) differs from the audit log "
            "(member, decision, signature, reason or time)"
        )
    for missing in sorted(expected.votes - votes, key=str):
        if not any(v[:3] == missing[:3] for v in votes):
            problems.append(
                f"audit entry {missing[6]}: {missing[1]}'s {missing[2]} of {missing[0]} is "
                "missing from gov.approvals"
            )
    for proposal_id in sorted(set(rows.statuses) | set(expected.status)):
        if rows.statuses.get(proposal_id) != expected.status.get(proposal_id):
            problems.append(
                f"gov.proposals {proposal_id}: status {rows.statuses.get(proposal_id)!r}, the audit "
                f"log says {expected.status.get(proposal_id)!r}"
            )
    return problems
