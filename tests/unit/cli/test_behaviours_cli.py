"""`behaviours classify` stream, `analyze --textgrid` and the bench, without typer."""

from __future__ import annotations

import io
import json

import pytest

from edge_agent.cli.behaviours import analyze_textgrid, classify_stream
from edge_agent.errors import EdgeAgentError
from tools.corpus.primock import primock_dir


@pytest.fixture(scope="module")
def classifier():
    from edge_agent.behaviours import BehaviourClassifier

    return BehaviourClassifier(threads=1)


def _run(text: str, classifier, batch: int = 3):
    out, err = io.StringIO(), io.StringIO()
    rc = classify_stream(io.StringIO(text), out, err, batch, classifier=classifier)
    return rc, [json.loads(x) for x in out.getvalue().splitlines()], err.getvalue().splitlines()


def test_malformed_lines_are_reported_and_the_rest_processed(classifier):
    lines = [
        '{"text": "Any fever?"}',
        "{not json",
        '{"txt": "missing"}',
        '{"text": 42}',
        '["a list"]',
        "",
        '{"text": "What brings you in today?"}',
        '{"text": "I\'d like you to cut down on salt."}',
    ]
    rc, out, err = _run("\n".join(lines) + "\n", classifier)
    assert rc == 1
    assert [o["text"] for o in out] == ["Any fever?", "What brings you in today?", "I'd like you to cut down on salt."]
    assert len(err) == 4
    assert err[0].startswith("line 2: not valid JSON")
    assert err[1].startswith('line 3: missing "text"')
    assert err[2].startswith('line 4: "text" must be a string')
    assert err[3].startswith("line 5: expected a JSON object")
    assert "closed_question" in out[0]["labels"]
    assert set(out[0]["scores"]) == set(__import__("edge_agent.behaviours", fromlist=["LABELS"]).LABELS)


def test_order_kept_across_batches_and_clean_exit(classifier):
    texts = [f"Have you had this for {i} days?" for i in range(50)]
    rc, out, err = _run("".join(json.dumps({"text": t}) + "\n" for t in texts), classifier, batch=7)
    assert rc == 0 and not err
    assert [o["text"] for o in out] == texts


def test_thousands_of_lines_in_order(classifier):
    """Throughput is a benchmark figure (edge-agent bench behaviours), not a timed test: here, order and count."""
    texts = ["Okay, and how long have you had the pain in your chest?", "Take one tablet twice a day with food."] * 2000
    data = "".join(json.dumps({"text": t}) + "\n" for t in texts)
    rc, out, _ = _run(data, classifier, batch=256)
    assert rc == 0 and len(out) == 4000
    assert [o["text"] for o in out] == texts
    assert "closed_question" in out[0]["labels"] and "closed_question" not in out[1]["labels"]


def test_bad_batch_size(classifier):
    with pytest.raises(EdgeAgentError):
        classify_stream(io.StringIO(""), io.StringIO(), io.StringIO(), 0, classifier=classifier)


@pytest.mark.skipif(not primock_dir().is_dir(), reason="PriMock57 not available")
def test_analyze_textgrid_jsonl_and_text(classifier):
    d = primock_dir() / "day1_consultation03_doctor.TextGrid"
    p = primock_dir() / "day1_consultation03_patient.TextGrid"
    buf = io.StringIO()
    assert analyze_textgrid(d, p, True, buf, classifier=classifier) == 0
    rows = [json.loads(x) for x in buf.getvalue().splitlines()]
    assert rows[0]["type"] == "metrics" and "interruptions" not in rows[0] and 0 < rows[0]["talk_share"] < 1
    assert rows[-1]["type"] == "feedback" and 1 <= len(rows[-1]["observations"]) <= 3
    utts = [r for r in rows if r["type"] == "utterance"]
    assert len(utts) > 50 and all(r["speaker"] == "clinician" for r in utts)
    text = io.StringIO()
    analyze_textgrid(d, p, False, text, classifier=classifier)
    assert "Observations" in text.getvalue() and "Turn-taking" in text.getvalue()


def test_analyze_missing_file(tmp_path, classifier):
    with pytest.raises(EdgeAgentError, match="not found"):
        analyze_textgrid(tmp_path / "a.TextGrid", tmp_path / "b.TextGrid", True, io.StringIO(), classifier=classifier)


@pytest.mark.slow
def test_bench_meets_runtime_targets():
    from tools.bench.behaviours import bench_behaviours

    r = bench_behaviours(n_batch=4000, n_single=300)
    assert r["model_mb"] <= 30
    assert r["p95_ms_per_utterance"] <= 5
    assert r["batched_utterances_per_s"] >= 2000
    assert r["timing_agreement_with_reference"] == "57/57"


@pytest.mark.skipif(not primock_dir().is_dir(), reason="PriMock57 not available")
def test_analyze_json_shows_only_what_the_report_may_show(classifier):
    """`analyze --jsonl/--json` is a report path: labels under the kappa bar and timing withheld with
    its observation (interruptions) must not reach it, as they do not reach the text report or the phone."""
    from edge_agent.behaviours.reliability import SHOWN
    from edge_agent.feedback.observations import WITHHELD_TIMING

    shown_anywhere: set[str] = set()
    for visit in ("day1_consultation03", "day1_consultation05", "day2_consultation01"):
        d = primock_dir() / f"{visit}_doctor.TextGrid"
        p = primock_dir() / f"{visit}_patient.TextGrid"
        buf = io.StringIO()
        assert analyze_textgrid(d, p, True, buf, classifier=classifier) == 0
        rows = [json.loads(x) for x in buf.getvalue().splitlines()]
        assert not set(rows[0]) & WITHHELD_TIMING, rows[0]
        for r in rows:
            if r["type"] == "utterance":
                shown_anywhere |= set(r["labels"])
        assert set(rows[-1]["label_counts"]) <= set(SHOWN)
    assert shown_anywhere and shown_anywhere <= set(SHOWN), shown_anywhere - set(SHOWN)
