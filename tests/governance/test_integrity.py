"""Integrity of identities and of what is shown (issue 13): one key one seat whatever its
spelling, canonical signatures only, every displayed ``gov.*`` field tamper-evident, and a
rewritten chain caught at its real first difference."""

from __future__ import annotations

import base64
import json
from datetime import timedelta

import pytest
from conftest import T0, make_policy, member_key
from test_registry import _approve, _doc, _passed

from governance.audit import entry_hash
from governance.policy import Member, PolicyError, parse_policy
from governance.registry import Registry
from governance.signing import (
    EncodingError,
    public_key_b64,
    public_key_bytes,
    sign,
    signature_bytes,
    verify,
)
from governance.workflow import Refusal

ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"


def spellings(canonical: str) -> list[str]:
    """Every base64 text that decodes (leniently) to the same bytes: the last data character
    carries spare low bits (2 for 32 bytes, 4 for 64)."""
    body = canonical.rstrip("=")
    padding = canonical[len(body) :]
    spare = 2 if len(padding) == 1 else 4
    k = ALPHABET.index(body[-1])
    return [
        body[:-1] + ALPHABET[(k & ~((1 << spare) - 1)) | j] + padding for j in range(1 << spare)
    ]


def test_one_key_has_four_spellings_and_only_the_canonical_one_is_accepted() -> None:
    key = public_key_b64(member_key("alice"))
    variants = spellings(key)
    assert len(set(variants)) == 4 and key in variants
    assert {base64.b64decode(v) for v in variants} == {base64.b64decode(key)}  # lenient: same
    for variant in variants:
        if variant == key:
            assert public_key_bytes(variant) == base64.b64decode(key)
        else:
            with pytest.raises(EncodingError, match="canonical"):
                public_key_bytes(variant)
            with pytest.raises(ValueError, match="canonical"):
                Member(name="x", public_key=variant)


def test_one_key_cannot_fill_two_seats_in_any_spelling() -> None:
    key = public_key_b64(member_key("alice"))
    for second in spellings(key):
        document = {
            "committee": [{"name": "a", "public_key": key}, {"name": "b", "public_key": second}],
            "quorum": 2,
        }
        with pytest.raises(PolicyError, match="one key, one seat|canonical"):
            parse_policy(document)


def test_signatures_are_canonical_and_bound_to_the_bytes() -> None:
    key = member_key("alice")
    public = public_key_b64(key)
    good = sign(key, "approve", "f" * 64)
    assert verify(public, good, "approve", "f" * 64)
    for variant in spellings(good):
        assert verify(public, variant, "approve", "f" * 64) is (variant == good)
    assert not verify(public, good[:10] + "!" + good[10:], "approve", "f" * 64)
    assert not verify(public, " " + good, "approve", "f" * 64)
    with pytest.raises(EncodingError, match="64 bytes"):
        signature_bytes(base64.b64encode(b"x" * 63).decode())


def test_a_second_spelling_of_a_vote_is_refused_and_audited(registry: Registry) -> None:
    state = registry.submit(_doc(), actor="risk", now=T0)
    signature = sign(member_key("alice"), "approve", state.proposal.fingerprint)
    flipped = next(v for v in spellings(signature) if v != signature)
    with pytest.raises(Refusal, match="canonical"):
        registry.vote(state.id, member="alice", decision="approve", signature=flipped, now=T0)
    last = registry.audit_entries()[-1]
    assert last.action == "approve_refused" and "canonical" in last.details["reason"]
    registry.vote(state.id, member="alice", decision="approve", signature=signature, now=T0)
    # bob cannot present alice's signature, in any spelling, as his
    for variant in spellings(signature):
        with pytest.raises(Refusal):
            registry.vote(state.id, member="bob", decision="approve", signature=variant, now=T0)
    assert registry.state(state.id).status.value == "submitted"  # still one approval of two


def test_a_legacy_policy_with_one_key_twice_still_counts_it_once(registry: Registry) -> None:
    """Defence in depth: even a stored policy that predates the rule cannot let one key meet a
    quorum of two (votes count distinct key bytes)."""
    policy = make_policy()
    key = policy.committee[0].public_key
    legacy = policy.model_construct(
        **{
            **dict(policy),
            "committee": (
                Member.model_construct(name="alice", public_key=key),
                Member.model_construct(name="alias", public_key=key),
            ),
        }
    )
    state = registry.submit(_doc(), actor="risk", now=T0)
    from dataclasses import replace

    from governance.workflow import Vote

    signature = sign(member_key("alice"), "approve", state.proposal.fingerprint)
    votes = (Vote("alice", "approve", signature, T0), Vote("alias", "approve", signature, T0))
    assert len(replace(state, votes=votes).valid_votes(legacy, "approve")) == 1


# --------------------------------------------------------------------------- what is shown


def _enacted_world(registry: Registry):
    enacted = _passed(registry, now=T0)
    second = registry.submit(
        _doc("Another", **{"collateral.ETH.haircut": 0.07}),
        actor="risk",
        now=T0 + timedelta(days=30),
    )
    _approve(registry, second.id, "alice", now=T0 + timedelta(days=30))
    assert registry.verify().ok
    return enacted.id, second.id


@pytest.mark.parametrize(
    ("column", "sql"),
    [
        (
            "document",
            "UPDATE gov.proposals SET document = replace(document::VARCHAR, 'ETH haircut', 'BTC haircut')::JSON WHERE proposal_id = '{p}'",
        ),
        ("title", "UPDATE gov.proposals SET title = 'Harmless' WHERE proposal_id = '{p}'"),
        ("author", "UPDATE gov.proposals SET author = 'someone else' WHERE proposal_id = '{p}'"),
        ("kind", "UPDATE gov.proposals SET kind = 'rollback' WHERE proposal_id = '{p}'"),
        ("created_by", "UPDATE gov.proposals SET created_by = 'mallory' WHERE proposal_id = '{p}'"),
        (
            "created_at",
            "UPDATE gov.proposals SET created_at = created_at - INTERVAL 3 DAY WHERE proposal_id = '{p}'",
        ),
        (
            "updated_at",
            "UPDATE gov.proposals SET updated_at = updated_at + INTERVAL 1 DAY WHERE proposal_id = '{p}'",
        ),
        (
            "effective_from",
            "UPDATE gov.proposals SET effective_from = effective_from + INTERVAL 1 DAY WHERE proposal_id = '{p}'",
        ),
        ("status", "UPDATE gov.proposals SET status = 'rejected' WHERE proposal_id = '{q}'"),
        (
            "vote reason",
            "UPDATE gov.approvals SET reason = 'I was forced' WHERE proposal_id = '{q}'",
        ),
        (
            "vote time",
            "UPDATE gov.approvals SET voted_at = voted_at - INTERVAL 1 HOUR WHERE proposal_id = '{q}'",
        ),
        ("vote signature", "UPDATE gov.approvals SET signature = 'AAAA' WHERE proposal_id = '{q}'"),
        ("vote decision", "UPDATE gov.approvals SET decision = 'reject' WHERE proposal_id = '{q}'"),
    ],
)
def test_every_displayed_field_is_tamper_evident(registry: Registry, column: str, sql: str) -> None:
    enacted, pending = _enacted_world(registry)
    registry.con.execute(sql.format(p=enacted, q=pending))
    report = registry.verify()
    assert not report.ok, column
    assert report.problems, column


def test_a_rewritten_chain_is_caught_at_its_real_first_difference(registry: Registry) -> None:
    """Edit an early vote entry and re-hash every later entry: the chain links up again, the
    published head is gone, and the state row written with the old entry names it."""
    enacted, pending = _enacted_world(registry)
    entries = registry.audit_entries()
    published = entries[-1].hash
    target = next(e for e in entries if e.action == "approved")
    con = registry.con
    previous = None
    for e in entries:
        details = dict(e.details)
        if e.seq == target.seq:
            details["reason"] = "rewritten"
        prev_hash = previous if previous is not None else e.prev_hash
        new_hash = entry_hash(e.seq, e.at, e.actor, e.action, e.subject, details, prev_hash)
        if e.seq >= target.seq:
            con.execute(
                "UPDATE gov.audit_log SET details = ?, prev_hash = ?, hash = ? WHERE seq = ?",
                [json.dumps(details), prev_hash, new_hash, e.seq],
            )
        previous = new_hash if e.seq >= target.seq else e.hash
    assert registry.verify().chain.ok  # on its own the rewritten chain is consistent …
    report = registry.verify(expect_head=published)
    assert not report.ok  # … but not the one that was published
    assert report.chain.first_bad == target.seq
    assert f"the first difference is entry {target.seq}" in report.chain.problem
