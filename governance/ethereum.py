"""Votes signed with Ethereum wallets: EIP-712 typed data (as Snapshot) or EIP-191
``personal_sign``, recovered to the signer's address with ``eth-account``.

A vote is the typed message ``Vote(string committee, bytes32 proposal, string decision)`` under
the domain ``{name: "Margin Workbench", version: "1", chainId, salt: keccak256(committee)}``:
the proposal's fingerprint,
the decision and the policy's committee and chain id are all signed, so an approval is not a
rejection, and a signature made for another committee or chain recovers to another address.
``personal_sign`` signs the same five facts as text (:func:`personal_message`).

Identities are bytes, not spellings: an address is its 20 bytes (lower-case hex, or mixed case
only when the EIP-55 checksum holds); a signature is 65 bytes ``r ‖ s ‖ v`` written as
``0x`` and 130 lower-case hex digits. Its ``s`` must be in the lower half of the curve order
(EIP-2): ``(r, n - s, v ^ 1)`` recovers the same address, and accepting both would let one
vote be stored under two spellings.
"""

from __future__ import annotations

import re
from typing import Any

from eth_account import Account
from eth_account.messages import encode_defunct, encode_typed_data
from eth_utils import is_checksum_address, keccak, to_checksum_address

__all__ = [
    "DOMAIN_NAME",
    "EthereumError",
    "address_bytes",
    "canonical_address",
    "eth_sign",
    "eth_verifies",
    "personal_message",
    "typed_vote",
]

DOMAIN_NAME = "Margin Workbench"
DOMAIN_VERSION = "1"
SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
_ADDRESS = re.compile(r"^0x[0-9a-fA-F]{40}$")
_SIGNATURE = re.compile(r"^0x[0-9a-f]{130}$")
_FINGERPRINT = re.compile(r"^[0-9a-f]{64}$")


class EthereumError(ValueError):
    """An address, key or signature that is not in its canonical form."""


def address_bytes(text: str) -> bytes:
    """The 20 bytes of an address given in lower case or with a valid EIP-55 checksum."""
    if not isinstance(text, str) or not _ADDRESS.match(text):
        raise EthereumError(f"{text!r} is not an Ethereum address (0x and 40 hex digits)")
    body = text[2:]
    if body != body.lower() and body != body.upper() and not is_checksum_address(text):
        raise EthereumError(f"{text} fails its EIP-55 checksum (a mistyped address?)")
    return bytes.fromhex(body)


def canonical_address(text: str) -> str:
    """The EIP-55 spelling of an address (one spelling per 20 bytes)."""
    return to_checksum_address("0x" + address_bytes(text).hex())


def _fingerprint32(fingerprint: str) -> bytes:
    if not _FINGERPRINT.match(fingerprint):
        raise EthereumError("a proposal fingerprint is 64 lower-case hex digits")
    return bytes.fromhex(fingerprint)


def typed_vote(fingerprint: str, decision: str, chain_id: int, committee: str) -> dict[str, Any]:
    """The EIP-712 message a member signs in a wallet (``eth_signTypedData_v4``)."""
    return {
        "types": {
            "EIP712Domain": [
                {"name": "name", "type": "string"},
                {"name": "version", "type": "string"},
                {"name": "chainId", "type": "uint256"},
                {"name": "salt", "type": "bytes32"},
            ],
            "Vote": [
                {"name": "committee", "type": "string"},
                {"name": "proposal", "type": "bytes32"},
                {"name": "decision", "type": "string"},
            ],
        },
        "primaryType": "Vote",
        "domain": {
            "name": DOMAIN_NAME,
            "version": DOMAIN_VERSION,
            "chainId": chain_id,
            "salt": "0x" + committee_salt(committee).hex(),
        },
        "message": {
            "committee": committee,
            "proposal": "0x" + _fingerprint32(fingerprint).hex(),
            "decision": decision,
        },
    }


def personal_message(fingerprint: str, decision: str, chain_id: int, committee: str) -> str:
    """The text a member signs with ``personal_sign`` (EIP-191): the same facts as the typed
    vote."""
    _fingerprint32(fingerprint)
    return (
        f"{DOMAIN_NAME} vote\nchain id: {chain_id}\ncommittee: {committee}\n"
        f"decision: {decision}\nproposal: {fingerprint}"
    )


def _encoded(kind: str, fingerprint: str, decision: str, chain_id: int, committee: str) -> Any:
    if kind == "eip712":
        message = typed_vote(fingerprint, decision, chain_id, committee)
        message["message"]["proposal"] = _fingerprint32(fingerprint)
        message["domain"]["salt"] = committee_salt(committee)
        return encode_typed_data(full_message=message)
    return encode_defunct(text=personal_message(fingerprint, decision, chain_id, committee))


def eth_sign(
    private_key: bytes,
    fingerprint: str,
    decision: str,
    chain_id: int,
    committee: str,
    *,
    scheme: str = "eip712",
) -> str:
    """A vote signed locally (tests and offline use): ``0x`` + r ‖ s ‖ v, low ``s``."""
    signed = Account.sign_message(
        _encoded(scheme, fingerprint, decision, chain_id, committee), private_key
    )
    return "0x" + bytes(signed.signature).hex()


def signature_parts(signature: str) -> bytes:
    """The 65 bytes of a canonical signature (``0x`` + 130 lower-case hex, low ``s``)."""
    if not isinstance(signature, str) or not _SIGNATURE.match(signature):
        raise EthereumError("an Ethereum signature is 0x and 130 lower-case hex digits")
    raw = bytes.fromhex(signature[2:])
    s = int.from_bytes(raw[32:64], "big")
    if not 0 < s <= SECP256K1_N // 2:
        raise EthereumError("the signature's s is in the upper half of the curve order (EIP-2)")
    if raw[64] not in (27, 28):
        raise EthereumError("the signature's v must be 27 or 28")
    return raw


def eth_verifies(
    address: bytes, signature: str, decision: str, fingerprint: str, chain_id: int, committee: str
) -> bool:
    """Whether ``signature`` (EIP-712, else EIP-191) recovers to ``address`` for this vote; a
    signature not in canonical form never verifies."""
    try:
        raw = signature_parts(signature)
        for scheme in ("eip712", "eip191"):
            encoded = _encoded(scheme, fingerprint, decision, chain_id, committee)
            recovered = Account.recover_message(encoded, signature=raw)
            if bytes.fromhex(recovered[2:]) == address:
                return True
    except (ValueError, TypeError):
        return False
    return False


def committee_salt(committee: str) -> bytes:
    """The domain's salt: keccak-256 of the committee's name (the committee is in the domain,
    so a vote for one committee is no vote for another)."""
    return keccak(text=committee)
