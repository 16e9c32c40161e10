"""A config (or a SIGHUP reload) whose buffers cannot hold the VAD's pre-roll is refused, naming the keys.

Both rules tie a restart-only key that sizes a buffer to live keys (``vad.preroll_ms``, ``vad.onset_ms``,
up to 2 s each, changed by a SIGHUP):

* the frame pool (``pipeline.frame_pool_s``, 0.5 s allowed): while no one speaks the VAD holds
  max(pre-roll, onset window) of frames from it. Holding the whole pool, a recording's reader waited for
  a free frame forever (the visit hung with no text: measured with frame_pool_s 0.5 and preroll_ms 2000)
  and a microphone's frames were all dropped;
* the segment buffer (``vad.max_segment_s``): a segment opens with the onset window plus the pre-roll;
  longer than the buffer, the VAD wrote past it and the run failed (tests/unit/audio/test_vad_every_allowed_config.py).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from edge_agent.device.config import load_config
from edge_agent.device.ops.signals import ConfigReloader
from edge_agent.errors import ConfigError


@pytest.mark.parametrize(
    "text, keys",
    [
        ("[pipeline]\nframe_pool_s = 0.5\n[vad]\npreroll_ms = 1000\n", ("pipeline.frame_pool_s", "vad.preroll_ms")),
        ("[pipeline]\nframe_pool_s = 1.0\n[vad]\nonset_ms = 2000\n", ("pipeline.frame_pool_s", "vad.onset_ms")),
        ("[vad]\nmax_segment_s = 2.0\nsplit_search_s = 1.0\npreroll_ms = 1500\nonset_ms = 1000\n", ("vad.max_segment_s", "vad.preroll_ms")),
    ],
    ids=["frame-pool-preroll", "frame-pool-onset", "segment-preroll"],
)
def test_a_file_whose_buffers_cannot_hold_the_preroll_is_refused(tmp_path: Path, text: str, keys: tuple[str, str]) -> None:
    path = tmp_path / "config.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as exc:
        load_config(path, env={})
    assert all(k in str(exc.value) for k in keys), str(exc.value)


@pytest.mark.parametrize(
    "running, reloaded",
    [
        ("[pipeline]\nframe_pool_s = 0.5\n", "[pipeline]\nframe_pool_s = 0.5\n[vad]\npreroll_ms = 2000\n"),
        ("[vad]\nmax_segment_s = 2.0\nsplit_search_s = 1.0\n",
         "[vad]\nmax_segment_s = 2.0\nsplit_search_s = 1.0\npreroll_ms = 2000\nonset_ms = 2000\n"),
    ],
    ids=["frame-pool", "segment"],
)
def test_a_reload_that_raises_the_preroll_past_the_running_buffers_is_refused(tmp_path: Path, running: str, reloaded: str) -> None:
    path = tmp_path / "config.toml"
    path.write_text(running)
    applied_configs: list[object] = []
    reloader = ConfigReloader(load_config(path, env={}), lambda cfg, keys: applied_configs.append(cfg), env={})
    before = reloader.current
    path.write_text(reloaded)
    assert reloader.reload() == ([], [])
    assert reloader.current is before and not applied_configs


def test_the_defaults_hold_the_largest_live_preroll(tmp_path: Path) -> None:
    """The default frame pool (3 s) and segment limit (10 s) take preroll_ms and onset_ms at their maxima."""
    path = tmp_path / "config.toml"
    path.write_text("[vad]\npreroll_ms = 2000\nonset_ms = 2000\n")
    cfg = load_config(path, env={})
    assert cfg.vad.preroll_ms == 2000 and cfg.vad.onset_ms == 2000
