"""The per-visit records that hold a clinician's identifiers or voiceprint print none of them.

A record that reaches a log line, an assertion message or a traceback through ``repr()``
must not carry the clinician id, their stable subject id, their sealing key or their voice.
"""

from __future__ import annotations

import numpy as np

from edge_agent.crypto import seal
from edge_agent.device.lifecycle import VisitContext, _Active
from edge_agent.device.ops.gpio import Claim

CLINICIAN = "clinician-7f3a9c"
PERSON = "s-ABCDEFGHIJKLMNOP"


def _secrets_in(text: str, raw_key: bytes) -> list[str]:
    found = [s for s in (CLINICIAN, PERSON) if s in text]
    if raw_key.hex() in text or repr(raw_key) in text or "X25519" in text:
        found.append("public key")
    if "0.123" in text or "bytearray" in text:
        found.append("voiceprint")
    return found


def test_visit_records_print_no_identifier_or_voice() -> None:
    raw_key = seal.generate_keypair()[1]
    key = seal.load_public_key(raw_key)
    ctx = VisitContext("v-abc", 1, 60, np.full(192, 0.123, np.float32), bytearray(b"\x01\x02voice"))
    claim = Claim(CLINICIAN, key, 1.0, person=PERSON)
    active = _Active(ctx, CLINICIAN, key, 1.0, person=PERSON)
    for record in (ctx, claim, active):
        text = repr(record)
        assert _secrets_in(text, raw_key) == [], text
    # still a useful repr: what state the record is in
    assert "pending" in repr(claim) and "started_monotonic" in repr(active)
