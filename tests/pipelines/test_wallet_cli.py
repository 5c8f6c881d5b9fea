"""Wallet votes from the command line: ``mwb sign --eth-key`` signs as a wallet would, ``mwb
approve --member --signature 0x…`` records it; two of three Safe owners approve."""

from __future__ import annotations

import copy
import hashlib
from datetime import UTC, datetime

import pytest
from eth_account import Account
from helpers import run_mwb

from governance.parameters import default_parameter_set
from governance.policy import DEFAULT_POLICY_DOCUMENT, parse_policy
from governance.proposals import parse_proposal
from governance.registry import Registry
from pipelines.settings import load_settings
from pipelines.warehouse import connect

OWNERS = ("dana", "eli", "fay")


def _key(name: str) -> bytes:
    return hashlib.sha256(f"cli-eth:{name}".encode()).digest()


@pytest.fixture
def home(tmp_path):
    settings = load_settings(tmp_path)
    document = copy.deepcopy(DEFAULT_POLICY_DOCUMENT)
    addresses = [Account.from_key(_key(n)).address for n in OWNERS]
    document["committee"] = [
        {"name": n, "address": a} for n, a in zip(OWNERS, addresses, strict=True)
    ]
    document["ethereum"] = {"chain_id": 42161, "committee": "risk"}
    document["safe"] = {"address": "0x" + "77" * 20, "owners": addresses, "threshold": 2}
    con = connect(settings.warehouse_path)
    registry = Registry(con)
    now = datetime.now(UTC)
    registry.initialise(default_parameter_set(), parse_policy(document), actor="admin", now=now)
    state = registry.submit(
        parse_proposal(
            {
                "title": "t",
                "author": "t",
                "motivation": "t",
                "changes": {"underlyings.ETH.pm.price_range": 0.2},
            }
        ),
        actor="t",
        now=now,
    )
    con.close()
    for name in OWNERS:
        (tmp_path / f"{name}.key").write_text("0x" + _key(name).hex() + "\n")
    return tmp_path, state.id, state.proposal.fingerprint


def test_sign_and_approve_with_wallet_keys(home) -> None:
    path, proposal, fingerprint = home
    for name, scheme in (("dana", "eip712"), ("eli", "eip191")):
        signed = run_mwb(
            "sign", fingerprint, "--eth-key", str(path / f"{name}.key"), "--chain-id", "42161",
            "--committee", "risk", "--scheme", scheme, home=path,
        )  # fmt: skip
        assert signed.returncode == 0, signed.stderr
        signature = signed.stdout.strip()
        assert signature.startswith("0x") and len(signature) == 132
        voted = run_mwb("approve", proposal, "--member", name, "--signature", signature, home=path)
        assert voted.returncode == 0, voted.stderr
    con = connect(load_settings(path).warehouse_path)
    try:
        assert Registry(con).state(proposal).status.value == "approved"
    finally:
        con.close()


def test_a_vote_signed_for_another_chain_is_refused(home) -> None:
    path, proposal, fingerprint = home
    signed = run_mwb(
        "sign", fingerprint, "--eth-key", str(path / "dana.key"), "--chain-id", "1",
        "--committee", "risk", home=path,
    )  # fmt: skip
    voted = run_mwb(
        "approve", proposal, "--member", "dana", "--signature", signed.stdout.strip(), home=path
    )
    assert voted.returncode != 0
    assert "refused" in voted.stderr and "not dana's approve" in voted.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--chain-id", "1"), "needs --chain-id and --committee"),
        (("--chain-id", "1", "--committee", "r", "--scheme", "eth_sign"), "--scheme"),
    ],
)
def test_sign_refusals(home, args, message) -> None:
    path, _, fingerprint = home
    result = run_mwb("sign", fingerprint, "--eth-key", str(path / "dana.key"), *args, home=path)
    assert result.returncode == 2 and message in result.stderr, result.stderr
    (path / "bad.key").write_text("0xnothex")
    bad = run_mwb(
        "sign", fingerprint, "--eth-key", str(path / "bad.key"), "--chain-id", "1",
        "--committee", "r", home=path,
    )  # fmt: skip
    assert bad.returncode == 2 and "not an Ethereum private key" in bad.stderr
    (path / "binary.key").write_bytes(bytes(range(128, 228)))  # not text at all
    binary = run_mwb(
        "sign", fingerprint, "--eth-key", str(path / "binary.key"), "--chain-id", "1",
        "--committee", "r", home=path,
    )  # fmt: skip
    assert binary.returncode == 2 and "not an Ethereum private key" in binary.stderr
