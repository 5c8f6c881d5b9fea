"""The governance registry: parameter sets, policies, proposals, votes, activations and the
audit log, persisted in the warehouse's ``gov`` schema (design §3, §7).

Every write is one DuckDB transaction that changes the state tables *and* appends its audit
entry, so the log and the state cannot disagree unless someone edits the file by hand — which
:meth:`Registry.verify` detects. A refused step appends only its refusal. Writes retry with
backoff when another connection's transaction conflicts; across processes DuckDB's file lock
serialises whole connections (see :func:`pipelines.warehouse.connect`).

Times are timezone-aware UTC and passed in (``now``), never read from a global clock here.
"""

from __future__ import annotations

import contextlib
import json
import random
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, TypeVar

import duckdb

from governance.audit import AuditEntry, ChainReport, next_entry, timestamp, verify_chain
from governance.parameters import ParameterSet, diff, parse_parameter_set
from governance.policy import Policy, parse_policy
from governance.proposals import Proposal, ProposalDocument, parse_proposal, proposed_policy
from governance.signing import Decision
from governance.workflow import (
    Event,
    ProposalState,
    Refusal,
    Status,
    Vote,
    enact,
    prepare,
    submit,
    transition_changes,
    vote,
)

T = TypeVar("T")


class GovernanceError(ValueError):
    """A request the registry cannot serve: not initialised, unknown proposal, ambiguous id."""


class TamperedError(RuntimeError):
    """A stored document whose content no longer matches the fingerprint it is filed under."""


@dataclass(frozen=True)
class Activation:
    """``parameter_set`` and ``policy`` are in force from ``effective_from`` until the next row's."""

    seq: int
    parameter_set: str
    policy: str
    effective_from: datetime
    proposal_id: str | None
    activated_at: datetime
    audit_seq: int


@dataclass(frozen=True)
class ProposalRecord:
    proposal_id: str
    fingerprint: str
    kind: str
    title: str
    author: str
    status: Status
    base_set: str
    proposed_set: str
    proposed_policy: str | None
    policy_fingerprint: str
    created_by: str
    created_at: datetime
    updated_at: datetime
    effective_from: datetime | None
    rolled_back_by: str | None
    approvals: tuple[str, ...] = ()
    rejections: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.proposal_id,
            "fingerprint": self.fingerprint,
            "kind": self.kind,
            "title": self.title,
            "author": self.author,
            "status": self.status.value,
            "base_set": self.base_set,
            "proposed_set": self.proposed_set,
            "proposed_policy": self.proposed_policy,
            "policy": self.policy_fingerprint,
            "created_by": self.created_by,
            "created_at": self.created_at.isoformat(),
            "updated_at": self.updated_at.isoformat(),
            "effective_from": self.effective_from.isoformat() if self.effective_from else None,
            "rolled_back_by": self.rolled_back_by,
            "approvals": list(self.approvals),
            "rejections": list(self.rejections),
        }


@dataclass(frozen=True)
class VerifyReport:
    """The chain check plus the cross-check of state tables against the log."""

    chain: ChainReport
    problems: tuple[str, ...] = field(default_factory=tuple)

    @property
    def ok(self) -> bool:
        return self.chain.ok and not self.problems

    def as_dict(self) -> dict[str, Any]:
        return {**self.chain.as_dict(), "ok": self.ok, "state_problems": list(self.problems)}


_CONFLICTS = (duckdb.TransactionException, duckdb.ConstraintException)


class Registry:
    """Governance state over one open warehouse connection."""

    def __init__(self, con: duckdb.DuckDBPyConnection, *, retries: int = 8) -> None:
        self.con = con
        self.retries = retries

    # ------------------------------------------------------------------ transactions
    def _write(self, step: Callable[[], T]) -> T:
        """Run ``step`` in one transaction, retrying with backoff on write conflicts.

        A :class:`Refusal` raised by ``step`` rolls it back; its event is then appended alone.
        """
        delay = 0.02
        for attempt in range(self.retries + 1):
            self.con.execute("BEGIN TRANSACTION")
            try:
                result = step()
                self.con.execute("COMMIT")
                return result
            except Refusal as refusal:
                self._rollback()
                self._write(lambda refusal=refusal: self._append(refusal.event))
                raise
            except _CONFLICTS:
                self._rollback()
                if attempt == self.retries:
                    raise
                time.sleep(delay * (0.5 + random.random()))
                delay = min(delay * 2, 1.0)
            except BaseException:
                self._rollback()
                raise
        raise AssertionError("unreachable")

    def _rollback(self) -> None:
        # a failed COMMIT has already ended the transaction
        with contextlib.suppress(duckdb.TransactionException):
            self.con.execute("ROLLBACK")

    def _append(self, event: Event) -> AuditEntry:
        row = self.con.execute(
            "SELECT seq, logged_at, actor, action, subject, details, prev_hash, hash FROM gov.audit_log "
            "ORDER BY seq DESC LIMIT 1"
        ).fetchone()
        entry = next_entry(
            _entry(row) if row else None,
            at=event.at,
            actor=event.actor,
            action=event.action,
            subject=event.subject,
            details=event.details,
        )
        self.con.execute(
            "INSERT INTO gov.audit_log VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [
                entry.seq,
                entry.at,
                entry.actor,
                entry.action,
                entry.subject,
                json.dumps(entry.details),
                entry.prev_hash,
                entry.hash,
            ],
        )
        return entry

    def _link(self, table: str, key: str, entry: AuditEntry) -> None:
        """Remember which audit entry (and its hash) a state row was written with."""
        self.con.execute(
            "INSERT OR REPLACE INTO gov.audit_links VALUES (?, ?, ?, ?)",
            [table, key, entry.seq, entry.hash],
        )

    # ------------------------------------------------------------------ documents
    def _store_set(self, parameter_set: ParameterSet, origin: str, now: datetime) -> None:
        self.con.execute(
            "INSERT INTO gov.parameter_sets SELECT ?, ?, ?, ? WHERE NOT EXISTS "
            "(SELECT 1 FROM gov.parameter_sets WHERE fingerprint = ?)",
            [
                parameter_set.fingerprint,
                parameter_set.canonical_json(),
                now,
                origin,
                parameter_set.fingerprint,
            ],
        )

    def _store_policy(self, policy: Policy, now: datetime) -> None:
        self.con.execute(
            "INSERT INTO gov.policies SELECT ?, ?, ? WHERE NOT EXISTS "
            "(SELECT 1 FROM gov.policies WHERE fingerprint = ?)",
            [
                policy.fingerprint,
                json.dumps(policy.model_dump(mode="json"), sort_keys=True),
                now,
                policy.fingerprint,
            ],
        )

    def parameter_set(self, fingerprint: str) -> ParameterSet:
        """The stored set; raises :class:`TamperedError` if its content no longer matches its key."""
        row = self.con.execute(
            "SELECT fingerprint, document FROM gov.parameter_sets WHERE fingerprint LIKE ? || '%'",
            [fingerprint],
        ).fetchall()
        if len(row) != 1:
            raise GovernanceError(
                f"parameter set {fingerprint}: {'no such set' if not row else 'ambiguous prefix'} in the registry"
            )
        key, document = row[0]
        parameter_set = parse_parameter_set(json.loads(document))
        if parameter_set.fingerprint != key:
            raise TamperedError(
                f"parameter set {key[:12]}… was altered in the database: its content hashes to "
                f"{parameter_set.fingerprint[:12]}…"
            )
        return parameter_set

    def policy(self, fingerprint: str | None = None) -> Policy:
        """The policy in force (the latest activation's), or the one with ``fingerprint``."""
        fingerprint = fingerprint or self.head().policy
        row = self.con.execute(
            "SELECT document FROM gov.policies WHERE fingerprint = ?", [fingerprint]
        ).fetchone()
        if row is None:
            raise GovernanceError(f"policy {fingerprint[:12]}…: not in the registry")
        policy = parse_policy(json.loads(row[0]))
        if policy.fingerprint != fingerprint:
            raise TamperedError(f"policy {fingerprint[:12]}… was altered in the database")
        return policy

    # ------------------------------------------------------------------ activations
    def initialised(self) -> bool:
        return self.con.execute("SELECT count(*) FROM gov.activations").fetchone()[0] > 0

    def activations(self) -> list[Activation]:
        rows = self.con.execute(
            "SELECT seq, parameter_set, policy, effective_from, proposal_id, activated_at, audit_seq "
            "FROM gov.activations ORDER BY seq"
        ).fetchall()
        return [Activation(*row) for row in rows]

    def head(self) -> Activation:
        """The latest activation (possibly effective in the future): what new proposals change."""
        row = self.con.execute(
            "SELECT seq, parameter_set, policy, effective_from, proposal_id, activated_at, audit_seq "
            "FROM gov.activations ORDER BY seq DESC LIMIT 1"
        ).fetchone()
        if row is None:
            raise GovernanceError("the governance registry is empty: run `mwb params init` first")
        return Activation(*row)

    def active_at(self, at: datetime) -> Activation | None:
        """The activation in force at ``at`` (``None`` before the first): backtests use it to
        replay history with the parameters that were actually in force, without look-ahead."""
        row = self.con.execute(
            "SELECT seq, parameter_set, policy, effective_from, proposal_id, activated_at, audit_seq "
            "FROM gov.activations WHERE effective_from <= ? ORDER BY effective_from DESC, seq DESC LIMIT 1",
            [at],
        ).fetchone()
        return Activation(*row) if row else None

    def last_changed(self) -> dict[str, datetime]:
        """When each parameter last changed value (for cool-downs)."""
        changed: dict[str, datetime] = {}
        previous: ParameterSet | None = None
        for activation in self.activations():
            current = self.parameter_set(activation.parameter_set)
            if previous is not None and current.fingerprint != previous.fingerprint:
                for change in diff(previous, current):
                    changed[change.path] = activation.effective_from
            previous = current
        return changed

    def initialise(
        self,
        parameter_set: ParameterSet,
        policy: Policy,
        *,
        actor: str,
        now: datetime,
        effective_from: datetime | None = None,
    ) -> Activation:
        """Record the genesis set and policy. The committee must be able to reach its quorum,
        otherwise nothing could ever be approved, not even a new policy."""
        if len(policy.committee) < policy.quorum:
            raise GovernanceError(
                f"the policy's committee has {len(policy.committee)} member(s) and its quorum is {policy.quorum}: "
                "create keys with `mwb keygen NAME` and list the members under `committee` in the policy file"
            )
        effective_from = effective_from or now

        def step() -> Activation:
            if self.initialised():
                raise GovernanceError("the governance registry is already initialised")
            self._store_set(parameter_set, "genesis", now)
            self._store_policy(policy, now)
            entry = self._append(
                Event(
                    "initialised",
                    parameter_set.fingerprint,
                    actor,
                    now,
                    {
                        "parameter_set": parameter_set.fingerprint,
                        "policy": policy.fingerprint,
                        "effective_from": effective_from.isoformat(),
                        "committee": [m.name for m in policy.committee],
                        "quorum": policy.quorum,
                    },
                )
            )
            return self._activate(
                parameter_set.fingerprint, policy.fingerprint, effective_from, None, now, entry
            )

        return self._write(step)

    def _activate(
        self,
        parameter_set: str,
        policy: str,
        effective_from: datetime,
        proposal_id: str | None,
        now: datetime,
        entry: AuditEntry,
    ) -> Activation:
        seq = self.con.execute("SELECT coalesce(max(seq), 0) + 1 FROM gov.activations").fetchone()[
            0
        ]
        self.con.execute(
            "INSERT INTO gov.activations VALUES (?, ?, ?, ?, ?, ?, ?)",
            [seq, parameter_set, policy, effective_from, proposal_id, now, entry.seq],
        )
        self._link("activations", str(seq), entry)
        return Activation(seq, parameter_set, policy, effective_from, proposal_id, now, entry.seq)

    # ------------------------------------------------------------------ proposals
    def resolve(self, proposal_id: str) -> str:
        """The full id for an id, an id prefix or a fingerprint prefix."""
        text = proposal_id.strip()
        prefix = text[2:] if text.upper().startswith("P-") else text
        rows = self.con.execute(
            "SELECT proposal_id FROM gov.proposals WHERE fingerprint LIKE ? || '%'",
            [prefix.lower()],
        ).fetchall()
        if len(rows) != 1 or len(prefix) < 4:
            raise GovernanceError(
                f"proposal {proposal_id}: "
                + ("no such proposal" if not rows else "ambiguous, give more digits")
            )
        return rows[0][0]

    def state(self, proposal_id: str) -> ProposalState:
        proposal_id = self.resolve(proposal_id)
        row = self.con.execute(
            "SELECT document, base_set, proposed_set, policy_fingerprint, status, created_at, effective_from, "
            "fingerprint FROM gov.proposals WHERE proposal_id = ?",
            [proposal_id],
        ).fetchone()
        (
            document_json,
            base_fp,
            proposed_fp,
            policy_fp,
            status,
            created_at,
            effective_from,
            fingerprint,
        ) = row
        document = parse_proposal(json.loads(document_json))
        base = self.parameter_set(base_fp)
        proposal = Proposal(
            document, base_fp, self.parameter_set(proposed_fp), policy_fp, proposed_policy(document)
        )
        if proposal.fingerprint != fingerprint:
            raise TamperedError(
                f"proposal {proposal_id} was altered in the database: it no longer hashes to its id"
            )
        votes = tuple(
            Vote(member, decision, signature, at, reason)
            for member, decision, signature, reason, at in self.con.execute(
                "SELECT member, decision, signature, reason, voted_at FROM gov.approvals WHERE proposal_id = ? "
                "ORDER BY voted_at",
                [proposal_id],
            ).fetchall()
        )
        changes = tuple(transition_changes(proposal, base, self.policy(policy_fp)))
        return ProposalState(
            proposal, Status(status), changes, votes, created_at, None, effective_from
        )

    def proposals(self, status: Status | None = None) -> list[ProposalRecord]:
        rows = self.con.execute(
            "SELECT proposal_id, fingerprint, kind, title, author, status, base_set, proposed_set, proposed_policy, "
            "policy_fingerprint, created_by, created_at, updated_at, effective_from, rolled_back_by "
            "FROM gov.proposals WHERE ? IS NULL OR status = ? ORDER BY created_at, proposal_id",
            [status and status.value, status and status.value],
        ).fetchall()
        votes: dict[str, dict[str, list[str]]] = {}
        for proposal_id, member, decision in self.con.execute(
            "SELECT proposal_id, member, decision FROM gov.approvals ORDER BY voted_at"
        ).fetchall():
            votes.setdefault(proposal_id, {"approve": [], "reject": []})[decision].append(member)
        return [
            ProposalRecord(
                *row[:5],
                Status(row[5]),
                *row[6:],
                approvals=tuple(votes.get(row[0], {}).get("approve", ())),
                rejections=tuple(votes.get(row[0], {}).get("reject", ())),
            )
            for row in rows
        ]

    def submit(
        self, document: ProposalDocument, *, actor: str, now: datetime, draft: bool = False
    ) -> ProposalState:
        """Check ``document`` against the schema and the policy and record it as submitted
        (``draft=True``: as a draft, which a later submit of the same document promotes)."""

        def step() -> ProposalState:
            proposal, active, policy = self._bind(document, actor=actor, now=now)
            status = Status.DRAFT if draft else Status.SUBMITTED
            existing = self.recorded_status(proposal.id)
            state, event = submit(proposal, active, policy, actor=actor, now=now, status=status)
            if existing is not None:
                if draft:
                    return self.state(proposal.id)  # drafting is idempotent: the same draft exists
                if existing is not Status.DRAFT:
                    raise Refusal(
                        f"{proposal.id} is already recorded ({existing.value})",
                        Event(
                            "proposal_refused",
                            proposal.id,
                            actor,
                            now,
                            {
                                "reason": f"already recorded ({existing.value})",
                                "fingerprint": proposal.fingerprint,
                            },
                        ),
                    )
                self._append(event)
                self._set_status(proposal.id, status, now)
                return state
            self._store_set(proposal.proposed, proposal.id, now)
            if proposal.proposed_policy is not None:
                self._store_policy(proposal.proposed_policy, now)
            entry = self._append(event)
            self.con.execute(
                "INSERT INTO gov.proposals VALUES "
                "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, NULL, NULL)",
                [
                    proposal.id,
                    proposal.fingerprint,
                    document.kind,
                    document.title,
                    document.author,
                    json.dumps(document.model_dump(mode="json"), sort_keys=True),
                    proposal.base_fingerprint,
                    proposal.proposed_fingerprint,
                    proposal.proposed_policy.fingerprint if proposal.proposed_policy else None,
                    proposal.policy_fingerprint,
                    status.value,
                    actor,
                    now,
                    now,
                ],
            )
            self._link("proposals", proposal.id, entry)
            return state

        return self._write(step)

    def _bind(
        self, document: ProposalDocument, *, actor: str, now: datetime
    ) -> tuple[Proposal, ParameterSet, Policy]:
        head = self.head()
        active = self.parameter_set(head.parameter_set)
        policy = self.policy(head.policy)
        target = None
        if document.kind == "rollback":
            target = self._rollback_target(document.rollback_to or "")
        proposal = prepare(document, active, policy, actor=actor, now=now, rollback_target=target)
        return proposal, active, policy

    def prepare(self, document: ProposalDocument, *, actor: str, now: datetime) -> Proposal:
        """``document`` bound to the set and policy in force, as :meth:`submit` would record it
        (same id), without recording anything. Raises :class:`Refusal` as submit would."""
        return self._bind(document, actor=actor, now=now)[0]

    def recorded_status(self, proposal_id: str) -> Status | None:
        """The status of proposal ``proposal_id`` (an exact id), or None if it is not recorded."""
        row = self.con.execute(
            "SELECT status FROM gov.proposals WHERE proposal_id = ?", [proposal_id]
        ).fetchone()
        return Status(row[0]) if row else None

    def _rollback_target(self, fingerprint: str) -> ParameterSet | None:
        """A set that was in force before; rollbacks go nowhere else."""
        was_active = self.con.execute(
            "SELECT count(*) FROM gov.activations WHERE parameter_set = ?", [fingerprint]
        ).fetchone()[0]
        return self.parameter_set(fingerprint) if was_active else None

    def _set_status(self, proposal_id: str, status: Status, now: datetime, **columns: Any) -> None:
        assignments = ", ".join(f"{name} = ?" for name in columns)
        self.con.execute(
            f"UPDATE gov.proposals SET status = ?, updated_at = ?{', ' + assignments if columns else ''} "
            "WHERE proposal_id = ?",
            [status.value, now, *columns.values(), proposal_id],
        )

    def vote(
        self,
        proposal_id: str,
        *,
        member: str,
        decision: Decision,
        signature: str,
        now: datetime,
        reason: str = "",
    ) -> ProposalState:
        """Record a member's signed approval or rejection."""

        def step() -> ProposalState:
            state = self.state(proposal_id)
            new, event = vote(
                state,
                self.policy(),
                member=member,
                decision=decision,
                signature=signature,
                now=now,
                reason=reason,
            )
            entry = self._append(event)
            self.con.execute(
                "INSERT INTO gov.approvals VALUES (?, ?, ?, ?, ?, ?, ?)",
                [state.id, member, decision, signature, reason, now, entry.seq],
            )
            self._link("approvals", f"{state.id}/{member}", entry)
            if new.status is not state.status:
                self._set_status(state.id, new.status, now)
            return new

        return self._write(step)

    def enact(
        self, proposal_id: str, *, actor: str, now: datetime, effective_from: datetime | None = None
    ) -> ProposalState:
        """Activate an approved proposal (see :func:`governance.workflow.enact` for the rules).

        Refused, and audited, if the audit log does not verify: a registry whose history was
        altered must not change what is in force.
        """

        def step() -> ProposalState:
            state = self.state(proposal_id)
            head = self.head()
            new, event = enact(
                state,
                self.policy(head.policy),
                active_fingerprint=head.parameter_set,
                last_changed=self.last_changed(),
                actor=actor,
                now=now,
                effective_from=effective_from,
                not_before=head.effective_from,
            )
            report = self.verify()
            if not report.ok:
                problem = report.chain.problem or report.problems[0]
                raise Refusal(
                    f"{state.id}: the audit log does not verify ({problem})",
                    Event(
                        "enact_refused",
                        state.id,
                        actor,
                        now,
                        {"reason": f"audit log does not verify: {problem}"},
                    ),
                )
            entry = self._append(event)
            self._set_status(state.id, Status.ENACTED, now, effective_from=new.effective_from)
            self._activate(
                event.details["parameter_set"],
                event.details["policy"],
                new.effective_from,
                state.id,
                now,
                entry,
            )
            if state.proposal.document.kind == "rollback" and head.proposal_id is not None:
                self._append(
                    Event(
                        "rolled_back",
                        head.proposal_id,
                        actor,
                        now,
                        {
                            "by": state.id,
                            "parameter_set": head.parameter_set,
                            "restored": event.details["parameter_set"],
                        },
                    )
                )
                self._set_status(head.proposal_id, Status.ROLLED_BACK, now, rolled_back_by=state.id)
            return new

        return self._write(step)

    # ------------------------------------------------------------------ audit
    def audit_entries(self) -> list[AuditEntry]:
        rows = self.con.execute(
            "SELECT seq, logged_at, actor, action, subject, details, prev_hash, hash FROM gov.audit_log ORDER BY seq"
        ).fetchall()
        return [_entry(row) for row in rows]

    def record(self, event: Event) -> AuditEntry:
        """Append an event that changes no state (e.g. a trigger's finding)."""
        return self._write(lambda: self._append(event))

    def verify(self, *, expect_head: str | None = None) -> VerifyReport:
        """Recompute the chain, then check the state tables against what the log says happened.

        A chain rewritten and re-hashed from some entry on still links up; against a published
        head it fails, and the state rows' remembered entry hashes name where the rewrite began.
        """
        entries = self.audit_entries()
        chain = verify_chain(entries, expect_head=expect_head)
        if not chain.ok and chain.first_bad == chain.head_seq + 1:
            # the chain links up but lacks the published head: truncated, or rewritten and
            # re-hashed — the state rows' remembered hashes tell which, and where
            rewritten = self._rewritten(entries)
            if rewritten is not None:
                seq, what = rewritten
                chain = replace(
                    chain,
                    first_bad=seq,
                    problem=f"the log was rewritten: the first difference is entry {seq} ({what})",
                )
            return VerifyReport(chain)
        if not chain.ok:
            return VerifyReport(chain)
        return VerifyReport(chain, tuple(self._state_problems(entries)))

    def _proposal_problems(
        self,
        submitted: dict[str, AuditEntry],
        updated: dict[str, datetime],
        enacted_from: dict[str, str],
        rolled_back_by: dict[str, str],
    ) -> list[str]:
        """Every field ``mwb proposals`` shows is the document's (which hashes to the
        fingerprint the log recorded) or what the log says happened."""
        problems = []
        rows = self.con.execute(
            "SELECT proposal_id, fingerprint, kind, title, author, document, base_set, proposed_set, "
            "proposed_policy, policy_fingerprint, created_by, created_at, updated_at, effective_from, "
            "rolled_back_by FROM gov.proposals ORDER BY proposal_id"
        ).fetchall()
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
            entry = submitted.get(pid)
            if entry is None:
                problems.append(f"gov.proposals {pid}: no submission in the audit log")
                continue
            try:
                document = parse_proposal(json.loads(document_json))
            except (ValueError, TypeError) as exc:
                problems.append(f"gov.proposals {pid}: the stored document is not valid ({exc})")
                continue
            digest = Proposal(
                document, base_set, _Fingerprinted(proposed_set), policy_fp
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
                "created_at": (_utc(created_at), _utc(entry.at)),
                "updated_at": (_utc(updated_at), _utc(updated.get(pid, entry.at))),
                "effective_from": (
                    effective_from.isoformat() if effective_from else None,
                    enacted_from.get(pid),
                ),
                "rolled_back_by": (rolled_back, rolled_back_by.get(pid)),
            }
            if document.title != title or document.kind != kind:
                problems.append(f"gov.proposals {pid}: title or kind differs from its document")
            for name, (have, want) in shown.items():
                if name == "effective_from" and have is not None and want is not None:
                    have, want = (
                        _utc(datetime.fromisoformat(have)),
                        _utc(datetime.fromisoformat(want)),
                    )
                if have != want:
                    problems.append(
                        f"gov.proposals {pid}: {name} {str(have)[:24]!r} differs from the audit "
                        f"log ({str(want)[:24]!r})"
                    )
        return problems

    def _links(self) -> list[tuple[str, str, int, str]]:
        return self.con.execute(
            "SELECT table_name, row_key, audit_seq, audit_hash FROM gov.audit_links ORDER BY audit_seq"
        ).fetchall()

    def _rewritten(self, entries: list[AuditEntry]) -> tuple[int, str] | None:
        """The first entry whose hash differs from the one a state row was written with."""
        by_seq = {e.seq: e for e in entries}
        for table, key, seq, recorded in self._links():
            entry = by_seq.get(seq)
            if entry is None:
                return seq, f"gov.{table} {key} cites it, and it is gone"
            if entry.hash != recorded:
                return seq, (
                    f"gov.{table} {key} was written with hash {recorded[:16]}…, the entry now "
                    f"hashes to {entry.hash[:16]}…"
                )
        return None

    def _state_problems(self, entries: Iterable[AuditEntry]) -> list[str]:
        problems: list[str] = []
        for table in ("parameter_sets", "policies"):
            for key, document in self.con.execute(
                f"SELECT fingerprint, document FROM gov.{table}"
            ).fetchall():
                parse = parse_parameter_set if table == "parameter_sets" else parse_policy
                try:
                    actual = parse(json.loads(document)).fingerprint
                except ValueError as exc:
                    problems.append(f"gov.{table} {key[:12]}…: no longer a valid document ({exc})")
                    continue
                if actual != key:
                    problems.append(
                        f"gov.{table} {key[:12]}…: content altered (hashes to {actual[:12]}…)"
                    )

        expected_activations, expected_votes, expected_status = [], set(), {}
        submitted: dict[str, AuditEntry] = {}
        updated: dict[str, datetime] = {}
        enacted_from: dict[str, str] = {}
        rolled_back_by: dict[str, str] = {}
        for e in entries:
            d = e.details
            if e.action in ("initialised", "enacted"):
                expected_activations.append(
                    (
                        d["parameter_set"],
                        d["policy"],
                        d["effective_from"],
                        None if e.action == "initialised" else e.subject,
                        e.seq,
                    )
                )
            before = expected_status.get(e.subject)
            if e.action in ("approved", "rejected"):
                expected_votes.add(
                    (
                        e.subject,
                        d["member"],
                        d["decision"],
                        d["signature"],
                        d.get("reason", ""),
                        e.at,
                        e.seq,
                    )
                )
                expected_status[e.subject] = d["status"]
            elif e.action in ("submitted", "drafted"):
                expected_status[e.subject] = (
                    Status.SUBMITTED.value if e.action == "submitted" else Status.DRAFT.value
                )
                submitted.setdefault(e.subject, e)
            elif e.action == "enacted":
                expected_status[e.subject] = Status.ENACTED.value
                enacted_from[e.subject] = d["effective_from"]
            elif e.action == "rolled_back":
                expected_status[e.subject] = Status.ROLLED_BACK.value
                rolled_back_by[e.subject] = d["by"]
            if expected_status.get(e.subject) != before:
                updated[e.subject] = e.at

        problems += self._proposal_problems(submitted, updated, enacted_from, rolled_back_by)
        by_seq = {e.seq: e for e in entries}
        for table, key, seq, recorded in self._links():
            entry = by_seq.get(seq)
            if entry is None or entry.hash != recorded:
                problems.append(
                    f"gov.{table} {key} was written with audit entry {seq} ({recorded[:16]}…), "
                    "which the log no longer holds"
                )
        stored = [
            (a.parameter_set, a.policy, a.effective_from.isoformat(), a.proposal_id, a.audit_seq)
            for a in self.activations()
        ]
        fields = ("parameter_set", "policy", "effective_from", "proposal_id", "audit_seq")
        for i, (want, have) in enumerate(zip(expected_activations, stored, strict=False), start=1):
            differing = [
                f"{name} {h!s:.16} (the log says {w!s:.16})"
                for name, w, h in zip(
                    fields, _activation_key(want), _activation_key(have), strict=True
                )
                if w != h
            ]
            if differing:
                problems.append(
                    f"gov.activations row {i} differs from audit entry {want[4]}: {'; '.join(differing)}"
                )
                break
        if len(stored) != len(expected_activations):
            problems.append(
                f"gov.activations has {len(stored)} rows; the audit log records {len(expected_activations)} activations"
            )
        votes = {
            (p, m, d, sig, reason, _utc(at), seq)
            for p, m, d, sig, reason, at, seq in self.con.execute(
                "SELECT proposal_id, member, decision, signature, reason, voted_at, audit_seq "
                "FROM gov.approvals"
            ).fetchall()
        }
        expected_votes = {(*v[:5], _utc(v[5]), v[6]) for v in expected_votes}
        for extra in sorted(votes - expected_votes, key=str):
            problems.append(
                f"gov.approvals row ({extra[0]}, {extra[1]}, {extra[2]}) differs from the audit log "
                "(member, decision, signature, reason or time)"
            )
        for missing in sorted(expected_votes - votes, key=str):
            if not any(v[:3] == missing[:3] for v in votes):
                problems.append(
                    f"audit entry {missing[6]}: {missing[1]}'s {missing[2]} of {missing[0]} is "
                    "missing from gov.approvals"
                )
        statuses = dict(
            self.con.execute("SELECT proposal_id, status FROM gov.proposals").fetchall()
        )
        for proposal_id in sorted(set(statuses) | set(expected_status)):
            if statuses.get(proposal_id) != expected_status.get(proposal_id):
                problems.append(
                    f"gov.proposals {proposal_id}: status {statuses.get(proposal_id)!r}, the audit log says "
                    f"{expected_status.get(proposal_id)!r}"
                )
        return problems


@dataclass(frozen=True)
class _Fingerprinted:
    """A stand-in for a stored parameter set: a proposal's fingerprint needs only its key."""

    fingerprint: str


def _utc(at: datetime) -> str:
    return timestamp(at) if at.tzinfo is not None else timestamp(at.replace(tzinfo=UTC))


def _activation_key(row: tuple) -> tuple:
    parameter_set, policy, effective_from, proposal_id, audit_seq = row
    return parameter_set, policy, datetime.fromisoformat(effective_from), proposal_id, audit_seq


def _entry(row: tuple) -> AuditEntry:
    seq, at, actor, action, subject, details, prev_hash, hash_ = row
    return AuditEntry(seq, at, actor, action, subject, json.loads(details), prev_hash, hash_)
