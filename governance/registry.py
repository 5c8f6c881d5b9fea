"""The governance registry's commands and queries: parameter sets, policies, proposals, votes,
activations and the audit log.

Each command checks the rules (:mod:`governance.workflow`) and writes, through
:class:`governance.store.GovStore`, the state rows *and* the audit entry in one transaction, so
the log and the state cannot disagree unless someone edits the database by hand — which
:meth:`Registry.verify` detects (:mod:`governance.reconcile`). A refused step appends only its
refusal.

Times are timezone-aware UTC and passed in (``now``), never read from a global clock here.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from typing import TYPE_CHECKING, Any, TypeVar

from governance.audit import AuditEntry, ChainReport, verify_chain
from governance.parameters import ParameterSet, diff, parse_parameter_set
from governance.policy import Policy, parse_policy
from governance.proposals import Proposal, ProposalDocument, parse_proposal, proposed_policy
from governance.reconcile import StateRows, rewritten, state_problems
from governance.shadow import AccountSnapshot, ShadowDay, shadow_verdict
from governance.signing import Decision
from governance.store import GovStore, entry_of
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

if TYPE_CHECKING:
    import duckdb

T = TypeVar("T")


@dataclass(frozen=True)
class ShadowRun:
    """A proposal's set in shadow: from ``first_day`` for ``days`` market days."""

    proposal_id: str
    shadow_set: str
    first_day: date
    days: int
    started_at: datetime


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


class Registry:
    """Governance state over one open warehouse connection."""

    def __init__(self, con: duckdb.DuckDBPyConnection, *, retries: int = 8) -> None:
        self.con = con
        self.store = GovStore(con, retries=retries)

    def _write(self, step: Callable[[], T]) -> T:
        return self.store.run(step)

    def parameter_set(self, fingerprint: str) -> ParameterSet:
        """The stored set; raises :class:`TamperedError` if its content no longer matches its key."""
        row = self.store.set_documents(fingerprint)
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
        document = self.store.policy_document(fingerprint)
        if document is None:
            raise GovernanceError(f"policy {fingerprint[:12]}…: not in the registry")
        policy = parse_policy(json.loads(document))
        if policy.fingerprint != fingerprint:
            raise TamperedError(f"policy {fingerprint[:12]}… was altered in the database")
        return policy

    # ------------------------------------------------------------------ activations
    def initialised(self) -> bool:
        return self.store.activation_count() > 0

    def activations(self) -> list[Activation]:
        return [Activation(*row) for row in self.store.activation_rows()]

    def head(self) -> Activation:
        """The latest activation (possibly effective in the future): what new proposals change."""
        row = self.store.last_activation_row()
        if row is None:
            raise GovernanceError("the governance registry is empty: run `mwb params init` first")
        return Activation(*row)

    def active_at(self, at: datetime) -> Activation | None:
        """The activation in force at ``at`` (``None`` before the first): backtests use it to
        replay history with the parameters that were actually in force, without look-ahead."""
        row = self.store.activation_row_at(at)
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
            self.store.store_set(parameter_set, "genesis", now)
            self.store.store_policy(policy, now)
            entry = self.store.append(
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
        seq = self.store.insert_activation(
            parameter_set, policy, effective_from, proposal_id, now, entry.seq
        )
        self.store.link("activations", str(seq), entry)
        return Activation(seq, parameter_set, policy, effective_from, proposal_id, now, entry.seq)

    # ------------------------------------------------------------------ proposals
    def resolve(self, proposal_id: str) -> str:
        """The full id for an id, an id prefix or a fingerprint prefix."""
        text = proposal_id.strip()
        prefix = text[2:] if text.upper().startswith("P-") else text
        rows = self.store.proposal_ids(prefix.lower())
        if len(rows) != 1 or len(prefix) < 4:
            raise GovernanceError(
                f"proposal {proposal_id}: "
                + ("no such proposal" if not rows else "ambiguous, give more digits")
            )
        return rows[0]

    def state(self, proposal_id: str) -> ProposalState:
        proposal_id = self.resolve(proposal_id)
        row = self.store.proposal_row(proposal_id)
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
            for member, decision, signature, reason, at in self.store.votes(proposal_id)
        )
        changes = tuple(transition_changes(proposal, base, self.policy(policy_fp)))
        return ProposalState(
            proposal, Status(status), changes, votes, created_at, None, effective_from
        )

    def proposals(self, status: Status | None = None) -> list[ProposalRecord]:
        votes: dict[str, dict[str, list[str]]] = {}
        for proposal_id, member, decision in self.store.vote_members():
            votes.setdefault(proposal_id, {"approve": [], "reject": []})[decision].append(member)
        return [_record(row, votes.get(row[0], {})) for row in self.store.proposal_list(status)]

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
                self.store.append(event)
                self.store.set_status(proposal.id, status, now)
                return state
            self.store.store_set(proposal.proposed, proposal.id, now)
            if proposal.proposed_policy is not None:
                self.store.store_policy(proposal.proposed_policy, now)
            entry = self.store.append(event)
            self.store.insert_proposal(
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
                ]
            )
            self.store.link("proposals", proposal.id, entry)
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
        status = self.store.status(proposal_id)
        return Status(status) if status is not None else None

    def _rollback_target(self, fingerprint: str) -> ParameterSet | None:
        """A set that was in force before; rollbacks go nowhere else."""
        return self.parameter_set(fingerprint) if self.store.was_active(fingerprint) else None

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
            entry = self.store.append(event)
            self.store.insert_vote(state.id, member, decision, signature, reason, now, entry.seq)
            self.store.link("approvals", f"{state.id}/{member}", entry)
            if new.status is not state.status:
                self.store.set_status(state.id, new.status, now)
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
            required = self.policy(head.policy).gate.shadow_days
            if required:
                allowed, why = shadow_verdict(self.shadow_days(state.id), required)
                if not allowed:
                    raise Refusal(
                        f"{state.id}: {why}",
                        Event("enact_refused", state.id, actor, now, {"reason": why}),
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
            assert new.effective_from is not None  # an enactment always has one
            entry = self.store.append(event)
            self.store.set_status(state.id, Status.ENACTED, now, effective_from=new.effective_from)
            self._activate(
                event.details["parameter_set"],
                event.details["policy"],
                new.effective_from,
                state.id,
                now,
                entry,
            )
            if state.proposal.document.kind == "rollback" and head.proposal_id is not None:
                self.store.append(
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
                self.store.set_status(
                    head.proposal_id, Status.ROLLED_BACK, now, rolled_back_by=state.id
                )
            return new

        return self._write(step)

    # ------------------------------------------------------------------ shadow runs
    def start_shadow(
        self,
        proposal_id: str,
        *,
        actor: str,
        now: datetime,
        first_day: date,
        days: int | None = None,
        accounts: AccountSnapshot | None = None,
    ) -> ShadowRun:
        """Put a submitted or approved proposal's set in shadow from ``first_day`` for ``days``
        market days (the policy's ``gate.shadow_default_days`` when not given), with account
        snapshot ``accounts`` (in force from its ``from_day``) margined beside the test
        portfolios; audited, in one transaction."""

        def step() -> ShadowRun:
            state = self.state(proposal_id)

            def refuse(why: str) -> Refusal:
                event = Event("shadow_refused", state.id, actor, now, {"reason": why})
                return Refusal(f"{state.id}: {why}", event)

            if state.status not in (Status.SUBMITTED, Status.APPROVED):
                raise refuse(
                    f"the proposal is {state.status.value}; a submitted or approved one runs "
                    "in shadow"
                )
            if state.proposal.document.kind not in ("change", "rollback"):
                raise refuse("a policy proposal has no parameter set to run in shadow")
            if self.store.shadow_row(state.id) is not None:
                raise refuse("the proposal is already in shadow")
            period = days if days is not None else self.policy().gate.shadow_default_days
            if not 1 <= period <= 366:
                raise refuse(f"a shadow period of {period} day(s): between 1 and 366")
            shadow_set = state.proposal.proposed_fingerprint
            entry = self.store.append(
                Event(
                    "shadow_started",
                    state.id,
                    actor,
                    now,
                    {"shadow_set": shadow_set, "first_day": first_day.isoformat(), "days": period},
                )
            )
            self.store.insert_shadow(state.id, shadow_set, first_day, period, now, entry.seq)
            self.store.link("shadows", state.id, entry)
            if accounts is not None:
                self._insert_accounts(state.id, accounts, first_day, actor, now)
            return ShadowRun(state.id, shadow_set, first_day, period, now)

        return self._write(step)

    def add_shadow_accounts(
        self, proposal_id: str, snapshot: AccountSnapshot, *, actor: str, now: datetime
    ) -> AuditEntry:
        """Supply a newer account snapshot to a shadow run, in force from its ``from_day``
        (which must follow every recorded day: what was recorded stays as it was); audited."""

        def step() -> AuditEntry:
            run = self.store.shadow_row(proposal_id)
            if run is None:
                raise GovernanceError(f"{proposal_id}: not in shadow")
            recorded = self.store.shadow_day_rows(proposal_id)
            if recorded and snapshot.from_day <= recorded[-1][1]:
                raise GovernanceError(
                    f"{proposal_id}: days through {recorded[-1][1]} are recorded; a snapshot "
                    f"from {snapshot.from_day} would rewrite them"
                )
            return self._insert_accounts(proposal_id, snapshot, run[2], actor, now)

        return self._write(step)

    def _insert_accounts(
        self,
        proposal_id: str,
        snapshot: AccountSnapshot,
        first_day: date,
        actor: str,
        now: datetime,
    ) -> AuditEntry:
        if snapshot.from_day < first_day:
            raise GovernanceError(
                f"{proposal_id}: a snapshot from {snapshot.from_day} is before the shadow's "
                f"first day {first_day}"
            )
        if any(r[1] == snapshot.from_day for r in self.store.shadow_account_rows(proposal_id)):
            raise GovernanceError(
                f"{proposal_id}: a snapshot from {snapshot.from_day} is already supplied"
            )
        entry = self.store.append(
            Event("shadow_accounts", proposal_id, actor, now, snapshot.facts())
        )
        self.store.insert_shadow_accounts(
            proposal_id, snapshot.from_day, snapshot.sha256, snapshot.canonical, entry.seq
        )
        self.store.link("shadow_accounts", f"{proposal_id}@{snapshot.from_day}", entry)
        return entry

    def shadow_accounts(self, proposal_id: str) -> list[AccountSnapshot]:
        """The account snapshots of a shadow run, oldest first; a stored row whose content no
        longer has its recorded SHA-256 raises :class:`TamperedError`."""
        out = []
        for _, from_day, sha, positions, _ in self.store.shadow_account_rows(proposal_id):
            snapshot = AccountSnapshot.from_canonical(from_day, positions)
            if snapshot.sha256 != sha:
                raise TamperedError(
                    f"shadow accounts {proposal_id} from {from_day}: content does not match its "
                    "SHA-256"
                )
            out.append(snapshot)
        return out

    def shadows(self) -> list[ShadowRun]:
        """Every shadow run, oldest first."""
        return [ShadowRun(r[0], r[1], r[2], r[3], r[4]) for r in self.store.shadow_rows()]

    def shadow(self, proposal_id: str) -> ShadowRun | None:
        row = self.store.shadow_row(self.resolve(proposal_id))
        return None if row is None else ShadowRun(row[0], row[1], row[2], row[3], row[4])

    def shadow_days(self, proposal_id: str) -> list[ShadowDay]:
        return [
            ShadowDay.from_record(json.loads(r[2])) for r in self.store.shadow_day_rows(proposal_id)
        ]

    def record_shadow_day(
        self, proposal_id: str, day: ShadowDay, *, actor: str, now: datetime
    ) -> AuditEntry:
        """Record one day of a shadow run (audited; a day is recorded once)."""

        def step() -> AuditEntry:
            if self.store.shadow_row(proposal_id) is None:
                raise GovernanceError(f"{proposal_id}: not in shadow")
            if any(r[1] == day.day for r in self.store.shadow_day_rows(proposal_id)):
                raise GovernanceError(f"{proposal_id}: {day.day} is already recorded")
            record = day.record()
            entry = self.store.append(Event("shadow_day", proposal_id, actor, now, record))
            self.store.insert_shadow_day(
                proposal_id, day.day, json.dumps(record, sort_keys=True), entry.seq
            )
            return entry

        return self._write(step)

    def _shadow_problems(self, entries: list[AuditEntry]) -> list[str]:
        """Shadow rows whose audit entry does not say what they say."""
        by_seq = {e.seq: e for e in entries}
        problems = []
        for proposal_id, day, record, seq in self.store.shadow_day_rows():
            entry = by_seq.get(seq)
            if (
                entry is None
                or entry.action != "shadow_day"
                or entry.subject != proposal_id
                or entry.details != json.loads(record)
            ):
                problems.append(f"shadow day {proposal_id} {day}: not what audit entry {seq} says")
        for proposal_id, shadow_set, first_day, days, _, seq in self.store.shadow_rows():
            entry = by_seq.get(seq)
            expected = {"shadow_set": shadow_set, "first_day": first_day.isoformat(), "days": days}
            if entry is None or entry.action != "shadow_started" or entry.details != expected:
                problems.append(f"shadow {proposal_id}: not what audit entry {seq} says")
        for proposal_id, from_day, sha, positions, seq in self.store.shadow_account_rows():
            entry = by_seq.get(seq)
            try:
                facts = AccountSnapshot.from_canonical(from_day, positions).facts()
            except (ValueError, TypeError, KeyError):
                facts = None
            if (
                entry is None
                or entry.action != "shadow_accounts"
                or entry.subject != proposal_id
                or facts is None
                or facts["sha256"] != sha
                or entry.details != facts
            ):
                problems.append(
                    f"shadow accounts {proposal_id} from {from_day}: not what audit entry {seq} says"
                )
        return problems

    # ------------------------------------------------------------------ audit
    def audit_entries(self) -> list[AuditEntry]:
        return [entry_of(row) for row in self.store.audit_rows()]

    def record(self, event: Event) -> AuditEntry:
        """Append an event that changes no state (e.g. a trigger's finding)."""
        return self._write(lambda: self.store.append(event))

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
            found = rewritten(entries, self.store.links())
            if found is not None:
                seq, what = found
                chain = replace(
                    chain,
                    first_bad=seq,
                    problem=f"the log was rewritten: the first difference is entry {seq} ({what})",
                )
            return VerifyReport(chain)
        if not chain.ok:
            return VerifyReport(chain)
        rows = StateRows(
            documents={t: self.store.documents(t) for t in ("parameter_sets", "policies")},
            proposals=self.store.proposal_rows(),
            links=self.store.links(),
            activations=[
                (
                    a.parameter_set,
                    a.policy,
                    a.effective_from.isoformat(),
                    a.proposal_id,
                    a.audit_seq,
                )
                for a in self.activations()
            ],
            votes=self.store.vote_rows(),
            statuses=self.store.statuses(),
        )
        problems = [*state_problems(entries, rows), *self._shadow_problems(entries)]
        return VerifyReport(chain, tuple(problems))


def _record(row: tuple, votes: dict[str, list[str]]) -> ProposalRecord:
    """A proposal's listing row with its voters."""
    return ProposalRecord(
        row[0],
        row[1],
        row[2],
        row[3],
        row[4],
        Status(row[5]),
        row[6],
        row[7],
        row[8],
        row[9],
        row[10],
        row[11],
        row[12],
        row[13],
        row[14],
        approvals=tuple(votes.get("approve", ())),
        rejections=tuple(votes.get("reject", ())),
    )
