"""Wallet votes (EIP-712 typed data and EIP-191 personal_sign), recovered with eth-account and
counted like Ed25519 votes; a non-member's signature, one over another fingerprint, a
malleated s, or one made for another chain or committee is refused and audited. A Safe as the
committee: its owners are the members, its threshold the quorum; an owner listed twice is
refused."""

from __future__ import annotations

import copy
import hashlib
import json
from datetime import timedelta

import pytest
from conftest import T0, make_policy
from eth_account import Account

from governance.ethereum import (
    SECP256K1_N,
    eth_sign,
    eth_verifies,
    personal_message,
    typed_vote,
)
from governance.parameters import default_parameter_set
from governance.policy import DEFAULT_POLICY_DOCUMENT, PolicyError, parse_policy
from governance.proposals import parse_proposal
from governance.registry import Registry
from governance.workflow import Refusal
from pipelines.warehouse import connect

CHAIN, COMMITTEE = 8453, "derive-risk"
OWNERS = ("dana", "eli", "fay")
SAFE = "0x" + "5a" * 20


def _key(name: str) -> bytes:
    return hashlib.sha256(f"eth-test:{name}".encode()).digest()


def _address(name: str) -> str:
    return Account.from_key(_key(name)).address


def _policy(**extra):
    document = copy.deepcopy(DEFAULT_POLICY_DOCUMENT)
    document["committee"] = [{"name": n, "address": _address(n)} for n in OWNERS]
    document["ethereum"] = {"chain_id": CHAIN, "committee": COMMITTEE}
    document.update(extra)
    return parse_policy(document)


@pytest.fixture
def registry(tmp_path):
    con = connect(tmp_path / "warehouse.duckdb")
    registry = Registry(con)
    registry.initialise(
        default_parameter_set(),
        _policy(safe={"address": SAFE, "owners": [_address(n) for n in OWNERS], "threshold": 2}),
        actor="admin",
        now=T0,
    )
    yield registry
    con.close()


def _submit(registry: Registry, value: float = 0.2) -> tuple[str, str]:
    document = parse_proposal(
        {
            "title": "ETH range",
            "author": "risk",
            "motivation": "wallet votes",
            "changes": {"underlyings.ETH.pm.price_range": value},
        }
    )
    state = registry.submit(document, actor="risk", now=T0 + timedelta(days=1))
    return state.id, state.proposal.fingerprint


def test_typed_data_is_what_a_wallet_signs() -> None:
    fingerprint = "ab" * 32
    message = typed_vote(fingerprint, "approve", CHAIN, COMMITTEE)
    from eth_utils import keccak

    assert message["domain"] == {
        "name": "Margin Workbench",
        "version": "1",
        "chainId": CHAIN,
        "salt": "0x" + keccak(text=COMMITTEE).hex(),
    }
    assert message["message"]["proposal"] == "0x" + fingerprint
    for scheme in ("eip712", "eip191"):
        signature = eth_sign(_key("dana"), fingerprint, "approve", CHAIN, COMMITTEE, scheme=scheme)
        address = bytes.fromhex(_address("dana")[2:])
        assert eth_verifies(address, signature, "approve", fingerprint, CHAIN, COMMITTEE)
        assert not eth_verifies(address, signature, "reject", fingerprint, CHAIN, COMMITTEE)
    assert "proposal: " + fingerprint in personal_message(fingerprint, "approve", CHAIN, COMMITTEE)


def test_wallet_votes_reach_the_safe_threshold(registry) -> None:
    proposal, fingerprint = _submit(registry)
    now = T0 + timedelta(days=2)
    registry.vote(
        proposal,
        member="dana",
        decision="approve",
        signature=eth_sign(_key("dana"), fingerprint, "approve", CHAIN, COMMITTEE),
        now=now,
    )
    state = registry.vote(
        proposal,
        member="eli",
        decision="approve",
        signature=eth_sign(_key("eli"), fingerprint, "approve", CHAIN, COMMITTEE, scheme="eip191"),
        now=now,
    )
    assert state.status.value == "approved"  # two of three owners: the Safe's threshold
    assert registry.verify().ok


def _malleated(signature: str) -> str:
    raw = bytes.fromhex(signature[2:])
    s = int.from_bytes(raw[32:64], "big")
    v = 27 if raw[64] == 28 else 28
    return "0x" + (raw[:32] + (SECP256K1_N - s).to_bytes(32, "big") + bytes([v])).hex()


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("non-owner", "not dana's approve"),
        ("other fingerprint", "not dana's approve"),
        ("malleated", "upper half of the curve order"),
        ("other chain", "not dana's approve"),
        ("other committee", "not dana's approve"),
        ("uppercase hex", "130 lower-case hex"),
    ],
)
def test_bad_wallet_votes_are_refused_and_audited(registry, case, message) -> None:
    proposal, fingerprint = _submit(registry)
    key, fp, chain, committee = _key("dana"), fingerprint, CHAIN, COMMITTEE
    if case == "non-owner":
        key = _key("mallory")
    elif case == "other fingerprint":
        fp = "cd" * 32
    elif case == "other chain":
        chain = 1
    elif case == "other committee":
        committee = "another-dao"
    signature = eth_sign(key, fp, "approve", chain, committee)
    if case == "malleated":
        signature = _malleated(signature)
        # the curve allows it: the same address recovers from the high-s twin
        assert Account.recover_message is not None
    if case == "uppercase hex":
        signature = "0x" + signature[2:].upper()
    before = len(registry.audit_entries())
    with pytest.raises(Refusal, match=message):
        registry.vote(
            proposal,
            member="dana",
            decision="approve",
            signature=signature,
            now=T0 + timedelta(days=2),
        )
    entries = registry.audit_entries()
    assert len(entries) == before + 1 and entries[-1].action == "approve_refused"
    assert registry.state(proposal).votes == ()


def test_a_safe_with_an_owner_twice_is_refused() -> None:
    owners = [
        _address("dana"),
        _address("dana").lower(),
        _address("eli"),
    ]  # one owner, two spellings
    with pytest.raises(PolicyError, match="listed twice"):
        _policy(safe={"address": SAFE, "owners": owners, "threshold": 2})
    with pytest.raises(PolicyError, match="threshold"):
        _policy(
            safe={"address": SAFE, "owners": [_address(n) for n in OWNERS], "threshold": 3},
            quorum=2,
        )


def test_wallet_members_need_the_chain_and_committee() -> None:
    document = copy.deepcopy(DEFAULT_POLICY_DOCUMENT)
    document["committee"] = [{"name": "dana", "address": _address("dana")}]
    document["quorum"] = 1
    with pytest.raises(PolicyError, match="chain_id"):
        parse_policy(document)


def test_policies_without_wallets_keep_their_fingerprint() -> None:
    policy = make_policy()
    document = policy.model_dump(mode="json")
    for key in ("gate", "ethereum", "safe"):
        document.pop(key)
    for member in document["committee"]:
        member.pop("address")
    old = hashlib.sha256(
        json.dumps(document, sort_keys=True, separators=(",", ":")).encode()
    ).hexdigest()
    assert policy.fingerprint == old
