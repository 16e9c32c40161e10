"""HPKE sealing: only the recipient opens; visit, sequence and recipient are bound."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge_agent.crypto import seal
from edge_agent.crypto.errors import SealError

ALICE, ALICE_PUB = seal.generate_keypair()
BOB, BOB_PUB = seal.generate_keypair()


def test_round_trip_and_ciphertext_hides_plaintext() -> None:
    report = b"At 0:14 you asked about fever before she finished describing the pain."
    env = seal.seal(report, ALICE_PUB, "visit-1", 1)
    assert report not in env.sealed and b"fever" not in env.sealed
    assert env.recipient_key_id == seal.key_id(ALICE_PUB)
    assert seal.open_envelope(env, ALICE, expected_visit_id="visit-1", expected_seq=1) == report
    # Two seals of the same report differ (fresh ephemeral key each time).
    assert seal.seal(report, ALICE_PUB, "visit-1", 1).sealed != env.sealed


def test_other_clinician_cannot_open() -> None:
    env = seal.seal(b"x", ALICE_PUB, "visit-1", 1)
    with pytest.raises(SealError, match="another key"):
        seal.open_envelope(env, BOB)
    # Even if the key id is rewritten to Bob's, the HPKE decapsulation fails.
    forged = dataclasses.replace(env, recipient_key_id=seal.key_id(BOB_PUB))
    with pytest.raises(SealError, match="does not open"):
        seal.open_envelope(forged, BOB)


def test_replay_to_another_visit_or_sequence_fails() -> None:
    env = seal.seal(b"x", ALICE_PUB, "visit-1", 1)
    with pytest.raises(SealError, match="does not open"):
        seal.open_envelope(dataclasses.replace(env, visit_id="visit-2"), ALICE)
    with pytest.raises(SealError, match="does not open"):
        seal.open_envelope(dataclasses.replace(env, seq=2), ALICE)
    with pytest.raises(SealError, match="another visit"):
        seal.open_envelope(env, ALICE, expected_visit_id="visit-2")
    with pytest.raises(SealError, match="sequence"):
        seal.open_envelope(env, ALICE, expected_seq=5)
    with pytest.raises(SealError, match="suite"):
        seal.open_envelope(dataclasses.replace(env, suite="rot13"), ALICE)


@settings(max_examples=60, deadline=None)
@given(pos=st.integers(min_value=0), flip=st.integers(min_value=1, max_value=255))
def test_any_bit_flip_is_detected(pos: int, flip: int) -> None:
    env = seal.seal(b"feedback bytes", ALICE_PUB, "visit-1", 3)
    data = bytearray(env.sealed)
    data[pos % len(data)] ^= flip
    with pytest.raises(SealError):
        seal.open_envelope(dataclasses.replace(env, sealed=bytes(data)), ALICE)


def test_bad_public_keys_rejected() -> None:
    for raw in (b"", b"\x00" * 31, b"\x00" * 32, b"\x00" * 33):
        with pytest.raises(SealError):
            seal.load_public_key(raw)
    with pytest.raises(SealError):
        seal.seal(b"x", ALICE_PUB, "", 1)
    with pytest.raises(SealError):
        seal.seal(b"x", ALICE_PUB, "v" * 65, 1)


def test_proto_conversion_round_trip() -> None:
    env = seal.seal(b"x", ALICE_PUB, "visit-1", 1)
    assert seal.from_proto(seal.to_proto(env)) == env
    raw = seal.private_key_bytes(ALICE)
    assert seal.open_envelope(env, seal.private_key_from_bytes(raw)) == b"x"
