"""The proposal workflow as pure functions: each takes the current state and returns the new
state and the audit event, or raises :class:`Refusal` carrying the event that records the
refusal.

::

    draft ──submit──> submitted ──votes──> approved ──enact──> enacted ──(rollback enacted)──> rolled-back
                               └─────────> rejected

* **submit** checks the document against the schema and the policy's bounds (value range and
  largest change per proposal);
* **vote** needs a committee member's Ed25519 signature over ``decision:fingerprint``; a
  non-member, a signature over anything else, or a second vote by the same member is refused;
  the proposal is approved when approvals reach the quorum, rejected when rejections make
  the quorum unreachable;
* **enact** re-verifies every stored vote and refuses outright if any is by a non-member, over
  another proposal or a second by the same member (a row forged in the database is an alarm,
  not a vote to skip); it needs the quorum, the active set and the policy the proposal was
  checked against, and — for changes — the cool-down since each parameter last changed.
  A rollback returns to a set the committee enacted before, so it skips bounds and cool-down
  but not the quorum.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from governance.parameters import ABSENT, Change, ParameterSet, diff, diff_paths, flatten_paths
from governance.policy import Policy, check_change
from governance.proposals import (
    Proposal,
    ProposalDocument,
    ProposalError,
    proposed_policy,
    proposed_set,
)
from governance.signing import Decision, EncodingError, signature_bytes


class Status(StrEnum):
    DRAFT = "draft"
    SUBMITTED = "submitted"
    APPROVED = "approved"
    REJECTED = "rejected"
    ENACTED = "enacted"
    ROLLED_BACK = "rolled-back"


@dataclass(frozen=True)
class Event:
    """One audit-log entry (before it is chained)."""

    action: str
    subject: str
    actor: str
    at: datetime
    details: dict[str, Any] = field(default_factory=dict)


class Refusal(ValueError):  # noqa: N818 - a refusal is the domain's word, not an error type
    """A refused step; ``event`` is what the audit log records about it."""

    def __init__(self, message: str, event: Event) -> None:
        super().__init__(message)
        self.event = event


@dataclass(frozen=True)
class Vote:
    member: str
    decision: Decision
    signature: str
    at: datetime
    reason: str = ""


@dataclass(frozen=True)
class ProposalState:
    proposal: Proposal
    status: Status
    changes: tuple[Change, ...]
    votes: tuple[Vote, ...] = ()
    submitted_at: datetime | None = None
    enacted_at: datetime | None = None
    effective_from: datetime | None = None

    @property
    def id(self) -> str:
        return self.proposal.id

    def valid_votes(self, policy: Policy, decision: Decision) -> list[Vote]:
        """Votes of distinct committee members — distinct *keys* — whose signatures verify:
        one key counts once however many seats or spellings it has."""
        seen: set[bytes] = set()
        valid = []
        for vote in self.votes:
            member = policy.member(vote.member)
            if vote.decision != decision or member is None or member.key_bytes in seen:
                continue
            if policy.signature_verifies(
                member, vote.signature, decision, self.proposal.fingerprint
            ):
                seen.add(member.key_bytes)
                valid.append(vote)
        return valid


def _plain(value: Any) -> Any:
    return None if value is ABSENT else value


def policy_changes(old: Policy, new: Policy) -> list[Change]:
    """Leaf-by-leaf differences of two policies (``committee.0.name`` …), like :func:`diff`."""
    return diff_paths(
        dict(flatten_paths(old.model_dump(mode="json"))),
        dict(flatten_paths(new.model_dump(mode="json"))),
    )


def transition_changes(proposal: Proposal, active: ParameterSet, policy: Policy) -> list[Change]:
    if proposal.proposed_policy is not None:
        return policy_changes(policy, proposal.proposed_policy)
    return diff(active, proposal.proposed)


def prepare(
    document: ProposalDocument,
    active: ParameterSet,
    policy: Policy,
    *,
    actor: str,
    now: datetime,
    rollback_target: ParameterSet | None = None,
) -> Proposal:
    """Bind ``document`` to the active set and check it against the schema and the policy.

    Raises :class:`Refusal` naming the parameter, its value and the bound it breaks.
    """

    def refuse(message: str, **extra: Any) -> Refusal:
        details = {
            "reason": message,
            "kind": document.kind,
            "policy_fingerprint": policy.fingerprint,
            **extra,
        }
        return Refusal(message, Event("proposal_refused", document.title, actor, now, details))

    try:
        proposed = proposed_set(document, active, rollback_target)
        new_policy = proposed_policy(document)
    except ProposalError as exc:
        raise refuse(str(exc)) from exc
    proposal = Proposal(document, active.fingerprint, proposed, policy.fingerprint, new_policy)
    changes = transition_changes(proposal, active, policy)
    if not changes:
        what = "policy" if new_policy is not None else "set"
        raise refuse(f"the proposal changes nothing: it equals the active {what}")
    if document.kind == "change":
        violations = [
            v for c in changes if (v := check_change(policy, c.path, _plain(c.old), _plain(c.new)))
        ]
        if violations:
            raise refuse(
                "; ".join(v.message for v in violations),
                violations=[v.__dict__ for v in violations],
            )
    return proposal


def submit(
    proposal: Proposal,
    active: ParameterSet,
    policy: Policy,
    *,
    actor: str,
    now: datetime,
    status: Status = Status.SUBMITTED,
) -> tuple[ProposalState, Event]:
    """A prepared proposal, recorded as submitted (or as a draft, for automatic triggers)."""
    changes = tuple(transition_changes(proposal, active, policy))
    state = ProposalState(proposal, status, changes, submitted_at=now)
    event = Event(
        "submitted" if status is Status.SUBMITTED else "drafted",
        proposal.id,
        actor,
        now,
        {**proposal.summary(), "changes": [c.as_dict() for c in changes]},
    )
    return state, event


def vote(
    state: ProposalState,
    policy: Policy,
    *,
    member: str,
    decision: Decision,
    signature: str,
    now: datetime,
    reason: str = "",
) -> tuple[ProposalState, Event]:
    """Record a signed approval or rejection (see the module docstring for what is refused)."""
    details = {"decision": decision, "member": member, "fingerprint": state.proposal.fingerprint}

    def refuse(why: str) -> Refusal:
        return Refusal(
            f"{state.id}: {why}",
            Event(f"{decision}_refused", state.id, member, now, {**details, "reason": why}),
        )

    if state.status not in (Status.SUBMITTED, Status.APPROVED):
        raise refuse(f"the proposal is {state.status.value}; votes are closed")
    if state.proposal.policy_fingerprint != policy.fingerprint:
        raise refuse(_stale_policy(state, policy))
    if decision == "reject" and not reason.strip():
        raise refuse("a rejection needs a reason")
    committee_member = policy.member(member)
    if committee_member is None:
        raise refuse(f"{member!r} is not a member of the committee")
    if any(v.member == member for v in state.votes):
        raise refuse(f"{member} has already voted on this proposal")
    try:
        if signature.startswith("0x"):  # a wallet's signature: canonical hex, low s
            from governance.ethereum import signature_parts

            signature_parts(signature)
        else:
            signature_bytes(signature)
    except (EncodingError, ValueError) as exc:
        raise refuse(str(exc)) from None
    if not policy.signature_verifies(
        committee_member, signature, decision, state.proposal.fingerprint
    ):
        raise refuse(
            f"the signature is not {member}'s {decision} of this proposal ({state.proposal.fingerprint[:12]}…)"
        )
    new = replace(state, votes=(*state.votes, Vote(member, decision, signature, now, reason)))
    approvals = len(new.valid_votes(policy, "approve"))
    rejections = len(new.valid_votes(policy, "reject"))
    status = new.status
    if approvals >= policy.quorum:
        status = Status.APPROVED
    elif rejections > len(policy.committee) - policy.quorum:
        status = Status.REJECTED  # the quorum can no longer be reached
    new = replace(new, status=status)
    event = Event(
        "approved" if decision == "approve" else "rejected",
        state.id,
        member,
        now,
        {
            **details,
            "signature": signature,
            "reason": reason,
            "approvals": approvals,
            "rejections": rejections,
            "status": status.value,
        },
    )
    return new, event


def _stale_policy(state: ProposalState, policy: Policy) -> str:
    return (
        f"it was checked against policy {state.proposal.policy_fingerprint[:12]}… but policy "
        f"{policy.fingerprint[:12]}… is in force now; re-propose it"
    )


def vote_problems(state: ProposalState, policy: Policy) -> list[str]:
    """Every stored vote that must not count, and why (non-member, bad signature, duplicate)."""
    problems, members, signatures = [], set(), set()
    for vote_ in state.votes:
        member = policy.member(vote_.member)
        if member is None:
            problems.append(
                f"the {vote_.decision} by {vote_.member!r} is not by a committee member"
            )
        elif not policy.signature_verifies(
            member, vote_.signature, vote_.decision, state.proposal.fingerprint
        ):
            problems.append(
                f"{vote_.member}'s {vote_.decision} signature is not over this proposal "
                f"({state.proposal.fingerprint[:12]}…)"
            )
        if vote_.member in members:
            problems.append(f"{vote_.member} voted more than once")
        try:
            raw = signature_bytes(vote_.signature)
        except EncodingError:
            raw = vote_.signature.encode()
            problems.append(f"{vote_.member}'s signature is not in canonical base64")
        if raw in signatures:
            problems.append(f"{vote_.member}'s signature duplicates another vote's")
        members.add(vote_.member)
        signatures.add(raw)
    return problems


def enact(
    state: ProposalState,
    policy: Policy,
    *,
    active_fingerprint: str,
    last_changed: Mapping[str, datetime],
    actor: str,
    now: datetime,
    effective_from: datetime | None = None,
    not_before: datetime | None = None,
) -> tuple[ProposalState, Event]:
    """Make the proposal's set (or policy) the active one from ``effective_from`` (default ``now``).

    ``not_before`` is when the latest activation takes effect: activations stay in time order.
    """
    effective_from = effective_from or now

    def refuse(why: str) -> Refusal:
        return Refusal(
            f"{state.id}: {why}", Event("enact_refused", state.id, actor, now, {"reason": why})
        )

    if state.status is not Status.APPROVED:
        raise refuse(f"the proposal is {state.status.value}, not approved")
    if state.proposal.policy_fingerprint != policy.fingerprint:
        raise refuse(_stale_policy(state, policy))
    problems = vote_problems(state, policy)
    if problems:
        raise refuse("; ".join(problems))
    approvals = state.valid_votes(policy, "approve")
    if len(approvals) < policy.quorum:
        raise refuse(f"{len(approvals)} valid approval(s), the quorum is {policy.quorum}")
    if state.proposal.base_fingerprint != active_fingerprint:
        raise refuse(
            f"it was written against set {state.proposal.base_fingerprint[:12]}… but {active_fingerprint[:12]}… is "
            "active now; re-propose against the active set"
        )
    if effective_from < now - timedelta(seconds=1):
        raise refuse(
            f"effective_from {effective_from.isoformat()} is in the past: history is not rewritten"
        )
    if not_before is not None and effective_from < not_before:
        raise refuse(
            f"effective_from {effective_from.isoformat()} is before the latest activation "
            f"({not_before.isoformat()}); activations stay in time order"
        )
    if state.proposal.document.kind == "change":
        cooldown = timedelta(days=policy.cooldown_days)
        for change in state.changes:
            last = last_changed.get(change.path)
            if last is not None and effective_from - last < cooldown:
                wait = cooldown - (effective_from - last)
                raise refuse(
                    f"{change.path} changed on {last:%Y-%m-%d %H:%M} UTC; the {policy.cooldown_days:g}-day "
                    f"cool-down ends in {wait.days} day(s) {wait.seconds // 3600} hour(s)"
                )
    new = replace(state, status=Status.ENACTED, enacted_at=now, effective_from=effective_from)
    proposed_policy_ = state.proposal.proposed_policy
    event = Event(
        "enacted",
        state.id,
        actor,
        now,
        {
            "fingerprint": state.proposal.fingerprint,
            "kind": state.proposal.document.kind,
            "parameter_set": state.proposal.proposed_fingerprint,
            "replaces": active_fingerprint,
            "policy": proposed_policy_.fingerprint if proposed_policy_ else policy.fingerprint,
            "effective_from": effective_from.isoformat(),
            "approvals": [v.member for v in approvals],
        },
    )
    return new, event
