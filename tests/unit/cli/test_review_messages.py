"""User-facing lines from a review of messages (rule 3): what is wrong and what to do, in the reader's words."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from tests.cli_runner import run_cli
from tests.unit.cli.test_review_bad_input import one_line
from tests.unit.device.test_serve_bad_paths import serve_config


def _taken_port() -> socket.socket:
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    return taken


@pytest.mark.parametrize("case", ["gpio driver missing", "web origin", "web port taken", "metrics port taken"])
def test_serve_refusal_comes_before_any_listening_line(tmp_path: Path, case: str) -> None:
    """A refused GPIO backend or web endpoint first logged 'listening on ...': the journal showed the room device
    ready, then gone. Everything that can refuse runs before the announcement; the refusal is the only line."""
    taken = _taken_port()
    port = taken.getsockname()[1]
    try:
        extra = {
            "gpio driver missing": "",
            "web origin": '[web]\nenabled = true\nallowed_origin = "http://phones.example"\n',
            "web port taken": f'[web]\nenabled = true\nport = {port}\nallowed_origin = "https://phones.example"\n',
            "metrics port taken": f"[metrics]\nenabled = true\nport = {port}\n",
        }[case]
        # rpi: no lgpio on this box, the driver cannot open
        config = serve_config(tmp_path, tmp_path / "state", extra, gpio="rpi" if case == "gpio driver missing" else "mock")
        result = run_cli("serve", "--config", str(config), timeout=120)
    finally:
        taken.close()
    if case == "gpio driver missing" and result.returncode == 0:
        pytest.skip("this box has the lgpio driver")
    line = one_line(result, "edge-agent:")
    assert {"gpio driver missing": "gpio.backend", "web origin": "allowed origin", "web port taken": "web.port",
            "metrics port taken": "metrics.port"}[case] in line, line


def test_certificate_role_takes_the_right_article(tmp_path: Path) -> None:
    """'holds a admin certificate' / 'needs a admin certificate': the article follows the role's word."""
    assert run_cli("ca", "init", "--ca-dir", str(tmp_path / "ca")).returncode == 0
    assert run_cli("ca", "issue-admin", "--ca-dir", str(tmp_path / "ca"), "--out", str(tmp_path / "admin.pem")).returncode == 0
    line = one_line(run_cli("phone", "init", "--bundle", str(tmp_path / "admin.pem"), "--keys", str(tmp_path / "k.json")),
                    "holds an admin certificate", "clinician")
    assert " a admin" not in line


def test_article_before_vowel_sounds() -> None:
    from edge_agent.wording import a_or_an

    assert [a_or_an(w) for w in ("admin", "aggregator", "clinician", "admin or clinician", "hour", "user")] == [
        "an admin", "an aggregator", "a clinician", "an admin or clinician", "an hour", "a user"]


@pytest.mark.parametrize(("written", "expected"), [
    ("1979-05-27", "server.port is 1979-05-27;"),
    ("1979-05-27T07:32:00Z", "server.port is 1979-05-27T07:32:00Z;"),
    ("07:32:00", "server.port is 07:32:00;"),
    ("true", "server.port is true;"),
])
def test_config_value_is_shown_as_written_not_as_a_python_repr(tmp_path: Path, written: str, expected: str) -> None:
    """A TOML date in an integer key showed as 'datetime.date(1979, 5, 27)' (and true as 'True')."""
    config = tmp_path / "config.toml"
    config.write_text(f"[server]\nport = {written}\n")
    line = one_line(run_cli("serve", "--config", str(config)), expected, "allowed: an integer")
    assert "datetime" not in line and "True" not in line


@pytest.mark.parametrize(("flag", "value", "key"), [("--threads", "0", "asr.cpu_threads"), ("--device", "tpu", "asr.device"),
                                                    ("--compute-type", "int3", "asr.compute_type"), ("--vad", "loud", "vad.engine")])
def test_a_bad_flag_is_named_as_typed_not_as_a_config_key(tmp_path: Path, flag: str, value: str, key: str) -> None:
    """`transcribe --threads 0` said 'asr.cpu_threads is 0': a key of a config file the user never wrote."""
    line = one_line(run_cli("transcribe", str(tmp_path / "visit.wav"), flag, value), f"{flag} is ", value)
    assert key not in line, line


def test_bench_threads_zero_is_named_as_the_flag() -> None:
    """`bench asr --threads 0` started a benchmark pass that failed with 'asr.cpu_threads is 0' nested in its line."""
    line = one_line(run_cli("bench", "asr", "--threads", "0"), "--threads is 0")
    assert "asr.cpu_threads" not in line and "benchmark pass" not in line, line


def test_a_missing_models_folder_is_named_as_a_folder(tmp_path: Path) -> None:
    """EDGE_AGENT_MODELS_DIR at a folder that does not exist said 'model manifest not found at .../MANIFEST'."""
    from edge_agent.models import ENV_MODELS_DIR

    recording = Path(__file__).resolve().parents[3] / "edge_agent" / "data" / "demo_conversation.flac"
    gone = tmp_path / "models"
    line = one_line(run_cli("analyze", str(recording), env={ENV_MODELS_DIR: str(gone)}),
                    f"models folder {gone} ({ENV_MODELS_DIR}) does not exist", f"point {ENV_MODELS_DIR} at")
    assert "manifest" not in line, line


@pytest.mark.parametrize(("command", "issue"), [
    (("phone", "init", "--keys", "k.json", "--bundle"), "edge-agent ca issue-clinician"),
    (("device", "status", "--device", "127.0.0.1:1", "--admin-bundle"), "edge-agent ca issue-admin"),
])
def test_a_missing_bundle_names_the_command_that_issues_it(tmp_path: Path, command: tuple[str, ...], issue: str) -> None:
    """Was "issue one with 'edge-agent ca issue-...'" for every kind: the reader had to guess which command."""
    gone = tmp_path / "gone.pem"
    line = one_line(run_cli(*command, str(gone)), f"bundle {gone} not found", f"issue one with '{issue}'")
    assert "..." not in line, line


def test_a_missing_contributor_bundle_is_one_hint_not_two(tmp_path: Path) -> None:
    """population.client_bundle missing said 'issue one with ...' twice (the generic one and the contributor's)."""
    from edge_agent.device.main import _check_contributor_bundle
    from edge_agent.errors import ConfigError

    with pytest.raises(ConfigError) as exc:
        _check_contributor_bundle(tmp_path / "contributor.pem", "cardiology")
    assert exc.value.message.count("issue one with") == 1, exc.value.message
    assert "'edge-agent aggregator issue-contributor'" in exc.value.message


def test_doctor_does_not_advise_reinstalling_for_a_models_folder_the_environment_chose(tmp_path: Path) -> None:
    """The line said to point EDGE_AGENT_MODELS_DIR elsewhere, and its fix then said to reinstall edge-agent."""
    from edge_agent.models import ENV_MODELS_DIR

    result = run_cli("doctor", "--skip", "audio", "--skip", "cpu", "--skip", "mdns", env={ENV_MODELS_DIR: str(tmp_path / "models")})
    line = next(ln for ln in result.stdout.splitlines() if ln.startswith("FAIL models"))
    assert "does not exist" in line and f"correct or unset {ENV_MODELS_DIR}" in line and "reinstall" not in line, line
