"""One report the phone cannot place must not hide every later one.

`phone feedback` stopped at the first report it refused (a visit it has no record of, a replay, a wrong
sequence number) without moving its cursor: every later collection stopped at the same report, so each
report queued after it - real ones included - stayed unseen on the device until its retention ran out.
The refused report is now skipped (left un-acknowledged on the device, said in one line) and the rest come.
Real server on loopback over mutual TLS, real outbox, the real phone client.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from edge_agent.crypto import seal
from edge_agent.phone import client as phone
from edge_agent.phone.keys import ClientError, load_key_file
from tests.delivery_fixtures import Pki, ServerThread, server_config


def test_a_refused_report_is_skipped_and_the_next_ones_still_arrive(tmp_path: Path) -> None:
    pki = Pki.make(tmp_path / "pki")
    srv = ServerThread(server_config(pki, tmp_path / "data")).start()
    try:
        me = load_key_file(pki.keys_a)
        outbox = srv.server.outbox  # type: ignore[union-attr]
        assert outbox is not None
        # first in the queue: a report for a visit this phone has no record of
        stray = outbox.put(me.pseudonym, seal.seal(b"", seal.load_public_key(me.sealing_public), "v-unknown", 1))
        visit = phone.start(pki.keys_a, srv.target, room_code=srv.room_code())
        phone.stop(pki.keys_a, srv.target)
        shown: list[phone.Report] = []
        with pytest.raises(ClientError, match="did not start or claim"):
            phone.feedback(pki.keys_a, srv.target, on_report=shown.append)
        assert [r.visit_id for r in shown] == [visit]
        assert phone.feedback(pki.keys_a, srv.target) == []  # nothing shown twice, no error about the skipped one again
        left = [i.id for i in outbox.fetch(me.pseudonym)]
        assert left == [stray]  # the refused report was not acknowledged: it stays until its retention ends
    finally:
        srv.stop()
