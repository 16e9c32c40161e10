"""A daemon restarted on a full disk names the full disk, and the queued report survives until space is freed.

On a full filesystem SQLite cannot size the WAL index (outbox.db-shm) and answers SQLITE_IOERR_SHMSIZE, not
SQLITE_FULL: serve refused to start with 'outbox ... cannot be opened (disk I/O error); check the disk', which sends
IT looking for a failing disk instead of freeing space.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from edge_agent.crypto import seal
from edge_agent.device.outbox import Outbox
from tests.paths import REPO_ROOT

SCRIPT = textwrap.dedent(
    """
    import errno, json, shutil, sys
    sys.path.insert(0, sys.argv[1])
    from pathlib import Path
    from edge_agent.device.outbox import Outbox, OutboxError
    state, queued = Path(sys.argv[2]), Path(sys.argv[3])
    shutil.copy(queued, state / "outbox.db")
    with open(state / "filler", "wb", buffering=0) as filler:  # the rest of the filesystem, to the last block
        try:
            while True:
                filler.write(bytes(4096))
        except OSError as exc:
            assert exc.errno == errno.ENOSPC, exc
    try:
        Outbox(state / "outbox.db")
        refusal = None
    except OutboxError as exc:
        refusal = [type(exc).__name__, str(exc)]
    (state / "filler").unlink()
    print(json.dumps({"refusal": refusal, "after_freeing": len(Outbox(state / "outbox.db").fetch("c-alice"))}))
    """
)


def test_outbox_on_a_full_disk_is_called_full_and_keeps_its_report(tmp_path: Path) -> None:
    if shutil.which("unshare") is None:
        pytest.skip("needs unshare (util-linux)")
    _, public = seal.generate_keypair()
    queued = tmp_path / "queued.db"
    box = Outbox(queued)
    box.put("c-alice", seal.seal(b"report", public, "v-1", 1))
    box.close()
    state = tmp_path / "state"
    state.mkdir()
    result = subprocess.run(
        ["unshare", "-rm", "sh", "-c", f'mount -t tmpfs -o size=256k tmpfs {state} && exec "$0" -c "$1" "$2" "$3" "$4"',
         sys.executable, SCRIPT, str(REPO_ROOT), str(state), str(queued)],
        capture_output=True, text=True, timeout=60,
    )
    if result.returncode != 0 and "mount" in result.stderr:
        pytest.skip(f"cannot mount a tmpfs in a user namespace here: {result.stderr.strip()}")
    assert result.returncode == 0, result.stderr
    got = json.loads(result.stdout)
    assert got["refusal"] is not None, "the outbox opened on a full disk"
    kind, message = got["refusal"]
    assert kind == "OutboxDiskFullError", message
    assert "disk full" in message and "free space" in message and "check the disk" not in message, message
    assert got["after_freeing"] == 1  # nothing queued was lost: once space is freed the report is there
