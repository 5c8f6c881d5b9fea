"""``mwb payload``: an approved proposal's Derive PMRM 2 values as a Safe Transaction Builder
batch; the calldata decodes with the setters' ABI back to exactly the proposal's values in the
contracts' fixed-point units, the batch has the Transaction Builder's layout, and its hash is in
the audit log and in the proposal report."""

from __future__ import annotations

import copy
import hashlib
import json
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from eth_abi import decode
from eth_account import Account
from eth_utils import is_checksum_address, keccak
from helpers import run_mwb
from pydantic import BaseModel, ConfigDict

from governance.ethereum import eth_sign
from governance.parameters import default_parameter_set, venue_parameter_set
from governance.policy import DEFAULT_POLICY_DOCUMENT, parse_policy
from governance.proposals import parse_proposal
from governance.registry import Registry
from pipelines.settings import load_settings
from pipelines.warehouse import connect

OWNERS = ("dana", "eli", "fay")
CHAIN, COMMITTEE = 957, "derive-risk"  # Derive's chain
PMRM = "0x" + "ab" * 20


def _key(name: str) -> bytes:
    return hashlib.sha256(f"payload:{name}".encode()).digest()


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class _Input(_Strict):
    internalType: str  # noqa: N815 - the Transaction Builder's field names
    name: str
    type: str


class _Method(_Strict):
    inputs: list[_Input]
    name: str
    payable: bool


class _Transaction(_Strict):
    to: str
    value: str
    data: str
    contractMethod: _Method | None  # noqa: N815
    contractInputsValues: dict[str, str] | None  # noqa: N815


class _Meta(_Strict):
    name: str
    description: str
    txBuilderVersion: str  # noqa: N815
    createdFromSafeAddress: str  # noqa: N815
    createdFromOwnerAddress: str  # noqa: N815


class _Batch(_Strict):
    """The Safe Transaction Builder's batch file (version 1.0)."""

    version: str
    chainId: str  # noqa: N815
    createdAt: int  # noqa: N815
    meta: _Meta
    transactions: list[_Transaction]


@pytest.fixture(scope="module")
def approved(tmp_path_factory):
    from pipelines.ingest import load_file
    from pipelines.sources.synthetic import write_synthetic_market

    tmp_path = tmp_path_factory.mktemp("payload-home")
    settings = load_settings(tmp_path)
    addresses = [Account.from_key(_key(n)).address for n in OWNERS]
    document = copy.deepcopy(DEFAULT_POLICY_DOCUMENT)
    document["committee"] = [
        {"name": n, "address": a} for n, a in zip(OWNERS, addresses, strict=True)
    ]
    document["ethereum"] = {"chain_id": CHAIN, "committee": COMMITTEE}
    document["safe"] = {"address": "0x" + "5a" * 20, "owners": addresses, "threshold": 2}
    con = connect(settings.warehouse_path)
    for path in write_synthetic_market(tmp_path_factory.mktemp("payload-market")):
        load_file(con, path)  # the report backtests the proposal on it
    registry = Registry(con)
    now = datetime.now(UTC)
    registry.initialise(default_parameter_set(), parse_policy(document), actor="admin", now=now)
    derive = copy.deepcopy(venue_parameter_set("derive").canonical_dict()["venues"]["derive"])
    derive["margin"]["im_factor"] = 1.35
    derive["vol_shock"]["range_up"] = 0.55
    derive["scenarios"][0]["dampening"] = 0.75
    state = registry.submit(
        parse_proposal(
            {
                "title": "Derive margin",
                "author": "risk",
                "motivation": "payload test",
                "changes": {"venues": {"derive": derive}},
            }
        ),
        actor="risk",
        now=now,
    )
    for name in OWNERS[:2]:
        registry.vote(
            state.id,
            member=name,
            decision="approve",
            signature=eth_sign(_key(name), state.proposal.fingerprint, "approve", CHAIN, COMMITTEE),
            now=now,
        )
    con.close()
    return tmp_path, state.id, derive


def _fixed(value: float) -> int:
    return int(Decimal(repr(value)) * 10**18)


def test_the_calldata_decodes_to_the_proposals_values(approved) -> None:
    home, proposal, derive = approved
    result = run_mwb("payload", proposal, "--to", PMRM, "--json", home=home)
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    batch = json.loads((home / "payloads" / f"{proposal}-derive-pmrm2.json").read_text())
    parsed = _Batch.model_validate(batch)
    assert parsed.chainId == str(CHAIN)
    assert parsed.meta.createdFromSafeAddress.lower() == "0x" + "5a" * 20
    by_name = {}
    for tx in parsed.transactions:
        assert is_checksum_address(tx.to) and tx.to.lower() == PMRM and tx.value == "0"
        assert tx.contractMethod is not None
        types = [i.type for i in tx.contractMethod.inputs]
        signature = f"{tx.contractMethod.name}({','.join(types)})"
        data = bytes.fromhex(tx.data[2:])
        assert data[:4] == keccak(text=signature)[:4]
        by_name[tx.contractMethod.name] = decode(types, data[4:])[0]
    # only the setters whose values changed, in the contracts' field order and units
    assert set(by_name) == {"setMarginParams", "setVolShockParams", "setScenarios"}
    margin = derive["margin"]
    assert by_name["setMarginParams"] == tuple(_fixed(margin[k]) for k in margin)
    vol = derive["vol_shock"]
    expected_vol = [_fixed(vol[k]) for k in vol]
    expected_vol[4] = int(vol["floor_seconds"])  # dteFloor is in seconds
    assert by_name["setVolShockParams"] == tuple(expected_vol)
    directions = {"none": 0, "up": 1, "down": 2, "linear": 3, "abs": 4}
    assert by_name["setScenarios"] == tuple(
        (_fixed(s["spot_shock"]), directions[s["vol_shock"]], _fixed(s["dampening"]))
        for s in derive["scenarios"]
    )
    assert by_name["setMarginParams"][0] == 1_350_000_000_000_000_000
    # the batch's hash: in the audit log, and in the report's appendix
    digest = hashlib.sha256(
        json.dumps(batch, sort_keys=True, separators=(",", ":")).encode()
    ).hexdigest()
    assert out["sha256"] == digest
    con = connect(load_settings(home).warehouse_path)
    try:
        entry = [e for e in Registry(con).audit_entries() if e.action == "payload"][-1]
        assert entry.details["sha256"] == digest and entry.subject == proposal
        assert Registry(con).verify().ok
    finally:
        con.close()
    assert any("margin.im_factor" in line and "1.35" in line for line in out["diff"])
    report = run_mwb("report", proposal, "--json", home=home, timeout=900)
    assert report.returncode == 0, report.stderr[-2000:]
    markdown = (home / "reports" / proposal / "report.md").read_text()
    assert digest in markdown and f"audit entry {entry.seq}" in markdown
    assert "EIP-712 vote to sign (approve)" in markdown  # the typed data a wallet signs


def test_refusals(approved) -> None:
    home, proposal, _ = approved
    bad = run_mwb("payload", proposal, "--to", "0x1234", home=home)
    assert bad.returncode == 2 and "not an Ethereum address" in bad.stderr
    other = run_mwb("payload", proposal, "--to", PMRM, "--target", "aave", home=home)
    assert other.returncode == 2 and "--target" in other.stderr
