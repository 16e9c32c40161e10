"""The log scrubber masks every clinician identifier the CA makes, not only certificate pseudonyms.

``scrub_ids`` is the second layer under the argument redaction: our own exception messages
(``EdgeAgentError``) are kept and only scrubbed. It masked ``c-`` pseudonyms and ``v-`` visit
ids but let a clinician's stable subject id (``s-`` + 16 base32, the one id that survives
certificate re-issue) and a room claim id (``k-`` + 16, which maps to one clinician while it
lives) through: 18 characters, under the 20-character catch-all, not hex.
"""

from __future__ import annotations

import logging

from edge_agent.crypto import ca
from edge_agent.device.ops.gpio import RoomClaims
from edge_agent.device.ops.logs import scrub_ids
from edge_agent.errors import EdgeAgentError
from tests.journal import device_journal


def test_stable_subject_and_claim_ids_are_masked_in_log_lines() -> None:
    stable = ca.new_stable_id()
    claim = RoomClaims(30.0).claim(ca.new_pseudonym(), None).claim_id
    assert scrub_ids(f"subject {stable} claim {claim}.") == "subject <id> claim <id>."
    with device_journal("debug") as out:
        logging.getLogger("edge_agent.test").warning("refused: %s", EdgeAgentError(f"clinician {stable} is not on the list ({claim})"))
    line = out.getvalue()
    assert stable not in line and claim not in line and "<id>" in line, line
    # words and short tokens that look alike stay readable
    assert scrub_ids("s-expression and k-means, a mid-sentence dash") == "s-expression and k-means, a mid-sentence dash"


def test_long_exception_class_names_stay_readable_and_ids_shaped_like_them_do_not() -> None:
    """The 20-character catch-all masked ConnectionRefusedError as '<id>': the journal said 'delivery failed: <id>'."""
    assert scrub_ids("delivery failed: ConnectionRefusedError") == "delivery failed: ConnectionRefusedError"
    assert scrub_ids("retry (ConnectionResetError)") == "retry (ConnectionResetError)"
    assert scrub_ids("token aB3dE5fG7hJ9kL1mN3pQ5rS7") == "token <id>"  # a random run is still an id
    assert scrub_ids("ConnectionRefusedError9f3kQ") == "<id>"  # a class name with more after it is not exempt
