"""The written training dialogues pass their checker and rebuild identically from src/."""

from __future__ import annotations

from pathlib import Path

from tools.training import dialogues_build, dialogues_check


def test_dialogues_check_passes():
    errors, report = dialogues_check.check()
    assert errors == []
    assert report["mi_counselling"]["sessions"] >= 40
    assert report["consultations_other"]["sessions"] >= 40
    assert report["health_coaching"]["sessions"] >= 20


def test_build_reproduces_committed_files(tmp_path: Path):
    dialogues_build.build(out=tmp_path)
    for name in ("mi_counselling", "consultations_other", "health_coaching"):
        for suffix in (".jsonl", "_sessions.jsonl"):
            built = (tmp_path / f"{name}{suffix}").read_text(encoding="utf-8")
            committed = (dialogues_build.OUT / f"{name}{suffix}").read_text(encoding="utf-8")
            assert built == committed, f"{name}{suffix} is stale: run python -m tools.training.dialogues_build"


def test_checker_catches_rule_breaks():
    labels = set(dialogues_check.guide_labels())
    row = {"id": "mi_counselling-x1:t001:s00", "source": "mi_counselling", "session": "x1",
           "setting": "s", "style": "s", "text": "Why?", "context": [], "next": None,
           "labels": ["open_question", "closed_question", "summary", "jargon"]}
    errs = " ".join(dialogues_check.check_row(row, labels))
    assert "both open_question and closed_question" in errs
    assert "summary without reflection" in errs
    assert "jargon without the term" in errs
