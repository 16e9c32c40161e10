"""A microphone connected after the daemon started is found at the next visit, without a restart.

PortAudio lists devices once, at initialisation: a USB microphone plugged in (or back in) after the service started
was never found, and every visit was refused with 'microphone ... not found' until IT restarted the service. The ALSA
file device (NOTES.md) stands in for the microphone: its .asoundrc appears only after the daemon is ready.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from edge_agent.phone import client as phone
from edge_agent.phone.keys import ClientError
from tests.daemon_site import device_config, make_room, running_daemon
from tests.system.test_daemon import free_port


def test_a_microphone_connected_after_start_is_used_by_the_next_visit(
    tmp_path: Path, jfk_16k: np.ndarray, alsa_file_mic: Callable[[np.ndarray], Path]
) -> None:
    room = make_room(tmp_path)
    port = free_port()
    config = tmp_path / "config.toml"
    config.write_text(device_config(tmp_path, port, '\n[audio]\ndevice = "micin"\n'))
    target = phone.Target("127.0.0.1", port, None)
    # HOME is where alsa_file_mic writes its .asoundrc: not yet
    with running_daemon(tmp_path, config, env={"HOME": str(tmp_path)}):
        # the clinician is told what to check (IT's journal line names the device and audio.device)
        with pytest.raises(ClientError, match="the room microphone is not connected"):
            phone.start(room.keys, target, room_code=room.code)
        assert alsa_file_mic(jfk_16k) == tmp_path  # the microphone is connected now
        visit_id = phone.start(room.keys, target, room_code=room.code)
        time.sleep(3)
        phone.stop(room.keys, target)
        reports = phone.feedback(room.keys, target, follow=False)
    assert [r.visit_id for r in reports] == [visit_id]
