"""Config: TOML + environment, every key documented, errors name the key and what is allowed."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge_agent.asr.backend import AsrConfig
from edge_agent.audio.vad import VadConfig
from edge_agent.device.config import (
    EXTERNAL_DOCS,
    SECTIONS,
    EdgeConfig,
    all_keys,
    changed_keys,
    keys,
    load_config,
)
from edge_agent.device.pipeline import PipelineConfig
from edge_agent.errors import ConfigError, EdgeAgentError
from edge_agent.site.config_file import render_docs, render_toml
from edge_agent.speakers.attribution import AttributionConfig
from tests.paths import REPO_ROOT

ROOT = REPO_ROOT


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(text)
    return path


def test_defaults_are_the_stage_dataclasses_defaults(tmp_path: Path) -> None:
    cfg = load_config(_write(tmp_path, "# nothing set\n"), env={})
    assert cfg.vad == VadConfig() and cfg.asr == AsrConfig() and cfg.speakers == AttributionConfig()
    assert cfg.pipeline == PipelineConfig()
    assert cfg.outbox.retention_days == 14 and cfg.outbox.db_path == Path("/var/lib/edge-agent/outbox.db")


def test_file_then_environment_override(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        '[vad]\naggressiveness = 3\n[server]\nroom = "Room 4"\nport = 50500\n[pipeline]\nsegment_buffers = 6\n'
        '[gpio]\nred_led_pin = 5\n[outbox]\nretention_days = 7\n',
    )
    env = {
        "EDGE_AGENT_SERVER__PORT": "50600",
        "EDGE_AGENT_LOGGING__JSON": "yes",
        "EDGE_AGENT_GPIO__RED_LED_PIN": "",  # empty clears an optional key
        "EDGE_AGENT_MODELS_DIR": "/elsewhere",  # not a config key (no '__'): ignored
    }
    cfg = load_config(path, env=env)
    assert cfg.source == path
    assert cfg.vad.aggressiveness == 3 and cfg.pipeline.vad.aggressiveness == 3
    assert cfg.server.room == "Room 4" and cfg.server.port == 50600
    assert cfg.pipeline.segment_buffers == 6
    assert cfg.logging.json is True
    assert cfg.gpio.red_led_pin is None
    assert cfg.outbox.outbox_config().retention_s == 7 * 86400


def test_vad_engine_from_file_and_environment(tmp_path: Path) -> None:
    path = _write(tmp_path, '[vad]\nengine = "silero"\nsilero_threshold = 0.6\nsilero_hangover_ms = 240\n')
    cfg = load_config(path, env={})
    assert cfg.vad.engine == "silero" and cfg.pipeline.vad.silero_threshold == 0.6 and cfg.vad.engine_hangover_ms == 240
    assert load_config(path, env={"EDGE_AGENT_VAD__ENGINE": "webrtc"}).vad.engine_hangover_ms == cfg.vad.hangover_ms


def test_config_path_from_environment(tmp_path: Path) -> None:
    path = _write(tmp_path, "[asr]\ncpu_threads = 2\n")
    assert load_config(env={"EDGE_AGENT_CONFIG": str(path)}).asr.cpu_threads == 2


@pytest.mark.parametrize(
    ("text", "env", "expected"),
    [
        ("[vad]\nagressiveness = 1\n", {}, "unknown config key vad.agressiveness"),
        ("[vda]\naggressiveness = 1\n", {}, "unknown config section [vda]"),
        ("[vad]\naggressiveness = 7\n", {}, "vad.aggressiveness is 7; allowed values: 0, 1, 2, 3"),
        ("[vad]\nframe_ms = 25\n", {}, "vad.frame_ms is 25; allowed values: 10, 20, 30"),
        ('[vad]\nengine = "rnnoise"\n', {}, "vad.engine is 'rnnoise'; allowed values: webrtc, silero, hybrid"),
        ("", {"EDGE_AGENT_VAD__ENGINE": "Silero"}, "vad.engine is 'Silero' (from EDGE_AGENT_VAD__ENGINE); allowed values: webrtc, silero, hybrid"),
        ("[vad]\nsilero_threshold = 0.99\n", {}, "vad.silero_threshold is 0.99; allowed: a number in 0.1..0.95"),
        ("[vad]\nsilero_threshold = 0.12\n", {}, "must satisfy 0 < silero_neg_threshold <= silero_threshold < 1"),
        ('[server]\nport = "http"\n', {}, "server.port is 'http'; allowed: an integer in 0..65535"),
        ("[server]\nport = 70000\n", {}, "server.port is 70000; allowed: an integer in 0..65535"),
        ('[gpio]\nbackend = "arduino"\n', {}, "gpio.backend is 'arduino'; allowed values: none, mock, rpi, jetson"),
        ("[logging]\njson = 1\n", {}, "logging.json is 1; allowed: true or false"),
        ("[gpio]\nled_pin = 17\n", {}, "gpio pins must differ"),
        ('[server]\nroom = "Room/4"\n', {}, "server.room is 'Room/4'"),
        ("", {"EDGE_AGENT_OUTBOX__MAX_MB": "lots"}, "outbox.max_mb is 'lots' (from EDGE_AGENT_OUTBOX__MAX_MB); allowed: an integer"),
        ("", {"EDGE_AGENT_NOPE__X": "1"}, "unknown config section [nope] (environment)"),
        ("", {"EDGE_AGENT_ASR__DEVICE": "tpu"}, "asr.device is 'tpu'"),
        ("", {"EDGE_AGENT_PIPELINE__PARTIAL_CPU_SHARE": "nan"}, "pipeline.partial_cpu_share is 'nan'"),
        ("vad = 3\n", {}, "[vad] in"),
        # accepted before, but a re-decode per 30 ms frame (0) or nonsense: refused naming the key and its range
        ("[vad]\npartial_interval_ms = 0\n", {}, "vad.partial_interval_ms is 0; allowed: an integer in 100..10000"),
        ("", {"EDGE_AGENT_VAD__PARTIAL_INTERVAL_MS": "5"}, "vad.partial_interval_ms is '5' (from EDGE_AGENT_VAD__PARTIAL_INTERVAL_MS); allowed: an integer in 100..10000"),
        ("[vad]\npreroll_ms = 600000\n", {}, "vad.preroll_ms is 600000; allowed: an integer in 0..2000"),
        # the VAD offers a partial only every partial_interval_ms: above the stated cadence the cadence is false
        ("[vad]\npartial_interval_ms = 4000\n", {}, "vad.partial_interval_ms (4000) must not exceed pipeline.partial_max_gap_s"),
        ("[vad]\npartial_interval_ms = 2500\n[pipeline]\npartial_max_gap_s = 2.0\n", {}, "must not exceed pipeline.partial_max_gap_s"),
        ("[vad]\nmin_speech_ms = 100000\n", {}, "vad.min_speech_ms is 100000; allowed: an integer in 0..5000"),
        ("[vad]\nhangover_ms = 60000\n", {}, "vad.hangover_ms is 60000; allowed: an integer in 30..5000"),
        ("[speakers]\nkmeans_iters = 100000\n", {}, "speakers.kmeans_iters is 100000; allowed: an integer in 1..100"),
        ("[speakers]\nmax_restarts = 100000\n", {}, "speakers.max_restarts is 100000; allowed: an integer in 1..100"),
    ],
)
def test_bad_keys_and_values_name_the_key_and_what_is_allowed(tmp_path: Path, text: str, env: dict[str, str], expected: str) -> None:
    path = _write(tmp_path, text)
    with pytest.raises(ConfigError) as err:
        load_config(path, env=env)
    assert expected in str(err.value)
    assert "\n" not in str(err.value)


def test_missing_or_broken_file_is_one_line_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.toml", env={})
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(_write(tmp_path, "[vad\n"), env={})
    with pytest.raises(ConfigError, match="is a directory"):
        load_config(tmp_path, env={})


def test_every_key_has_documentation_and_external_docs_are_not_stale() -> None:
    missing = [k.key for k in all_keys() if not k.doc.strip()]
    assert not missing, f"document these keys (field metadata or EXTERNAL_DOCS): {missing}"
    known = {k.key for k in all_keys()}
    stale = sorted(set(EXTERNAL_DOCS) - known)
    assert not stale, f"EXTERNAL_DOCS names keys that no longer exist: {stale}"
    # pipeline.vad / pipeline.asr are sections of their own, not scalar keys
    assert "pipeline.vad" not in known and "vad.frame_ms" in known


def test_docs_config_md_is_generated_from_the_code() -> None:
    committed = (ROOT / "docs" / "config.md").read_text()
    assert committed == render_docs(), "docs/config.md is stale: python -m edge_agent.site.config_file docs > docs/config.md"
    for spec in all_keys():
        assert f"| `{spec.name}` |" in committed


def test_rendered_config_round_trips_every_default(tmp_path: Path) -> None:
    everything = {s.name: {k.name: k.default for k in keys(s.name)} for s in SECTIONS}
    everything["gpio"]["red_led_pin"] = None
    everything["server"]["room"] = "Room 12 - east"
    path = _write(tmp_path, render_toml(everything))
    cfg = load_config(path, env={})
    assert cfg.server.room == "Room 12 - east" and cfg.gpio.red_led_pin is None
    assert cfg.vad == VadConfig() and cfg.asr == AsrConfig()
    # the commented template is all defaults
    assert load_config(_write(tmp_path, render_toml()), env={}).pipeline == PipelineConfig()


def test_changed_keys_marks_live_and_restart(tmp_path: Path) -> None:
    old = load_config(_write(tmp_path, ""), env={})
    new = load_config(_write(tmp_path, '[logging]\nlevel = "debug"\n[asr]\ncpu_threads = 2\n'), env={})
    changed = {k.key: k.live for k in changed_keys(old, new)}
    assert changed == {"logging.level": True, "asr.cpu_threads": False}


def test_config_error_is_an_edge_agent_error() -> None:
    assert issubclass(ConfigError, EdgeAgentError)
    assert isinstance(EdgeConfig().vad, VadConfig)


def test_non_utf8_config_is_one_line_exit_2(tmp_path: Path) -> None:
    """Latin-1 or binary junk in config.toml: the one-line error and exit 2, not 'internal error' (70)."""
    import subprocess
    import sys

    bad = tmp_path / "config.toml"
    bad.write_bytes(b'[server]\nroom = "Salle \xe9"\n')
    with pytest.raises(ConfigError, match=r"not UTF-8 text \(byte 0xe9 at line 2\)"):
        load_config(bad, env={})
    result = subprocess.run([sys.executable, "-m", "edge_agent.cli", "serve", "--config", str(bad)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "not UTF-8" in lines[0] and "Traceback" not in result.stderr
