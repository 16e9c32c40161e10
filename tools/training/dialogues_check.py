"""Check the written training dialogues (tools/training/data/dialogues/).

    python -m tools.training.dialogues_check [--markdown]

Checks, for every <source>.jsonl and <source>_sessions.jsonl:
  * JSON shape: required keys and types; ids "<source>-<session>:tNNN:sNN";
    context entries {"speaker": clinician|patient, "text"} (+ "same_turn": true
    for the clinician's earlier sentences of the same turn, as in the gold packets);
  * ids unique across all sources;
  * labels only from the guide's label set (read from the table in
    docs/labelling.md §2), no duplicates;
  * the guide's co-occurrence rules (§2, §6): never both open and closed question;
    agenda_solicitation / ice_question / teach_back only on questions;
    complex_reflection => reflection, summary => reflection,
    advice_with_permission => advice; jargon items name the term in the note;
  * context holds at most 3 preceding turns (the same_turn entry is not a turn)
    and matches the session transcript; the sentence is in its transcript turn;
  * 10-40 clinician turns per session.
Prints per-source session/sentence counts and per-label counts; exits 1 on error.
"""

from __future__ import annotations

import json
import re
import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DATA = Path(__file__).resolve().parent / "data" / "dialogues"
GUIDE = ROOT / "docs" / "labelling.md"
SOURCES = ("mi_counselling", "consultations_other", "health_coaching")
ID_RE = re.compile(r"^(?P<source>[a-z_]+)-(?P<session>[A-Za-z0-9_]+):t(?P<turn>\d{3}):s(?P<sent>\d{2})$")
KEYS = {"id": str, "source": str, "session": str, "setting": str, "style": str, "text": str,
        "context": list, "labels": list}


def guide_labels(path: Path = GUIDE) -> list[str]:
    """Label names from the guide's §2 table (rows starting with | `label` |)."""
    text = path.read_text(encoding="utf-8")
    sec = text.split("## 2. The label set", 1)[1].split("\n## 3.", 1)[0]
    return re.findall(r"^\| `([a-z_]+)` \|", sec, flags=re.M)


def check_row(r: dict, labels_ok: set[str]) -> list[str]:
    errs = []
    for k, t in KEYS.items():
        if not isinstance(r.get(k), t):
            errs.append(f"key {k!r} missing or not {t.__name__}")
    if errs:
        return errs
    if not (r.get("next") is None or isinstance(r.get("next"), str)):
        errs.append("'next' must be a string or null")
    if "note" in r and not isinstance(r["note"], str):
        errs.append("'note' must be a string")
    m = ID_RE.match(r["id"])
    if not m:
        errs.append(f"bad id {r['id']!r}")
    elif m["source"] != r["source"] or m["session"] != r["session"]:
        errs.append("id does not match source/session")
    if not r["text"].strip():
        errs.append("empty text")
    labs = r["labels"]
    if len(set(labs)) != len(labs):
        errs.append("duplicate labels")
    bad = [x for x in labs if x not in labels_ok]
    if bad:
        errs.append(f"unknown labels {bad}")
    s = set(labs)
    q = {"open_question", "closed_question"} & s
    if len(q) == 2:
        errs.append("both open_question and closed_question")
    for fn in ("agenda_solicitation", "ice_question", "teach_back"):
        if fn in s and not q:
            errs.append(f"{fn} without a question label")
    for sub, sup in (("complex_reflection", "reflection"), ("summary", "reflection"),
                     ("advice_with_permission", "advice")):
        if sub in s and sup not in s:
            errs.append(f"{sub} without {sup}")
    if "jargon" in s and "jargon" not in r.get("note", "").lower():
        errs.append("jargon without the term named in note")
    turns = [c for c in r["context"] if not c.get("same_turn")]
    if len(turns) > 3:
        errs.append(f"context has {len(turns)} turns (max 3)")
    for c in r["context"]:
        if not isinstance(c, dict) or c.get("speaker") not in ("clinician", "patient") or not isinstance(c.get("text"), str):
            errs.append(f"bad context entry {c!r}")
        elif c.get("same_turn") and c["speaker"] != "clinician":
            errs.append("same_turn entry must be the clinician's")
    same = [i for i, c in enumerate(r["context"]) if c.get("same_turn")]
    if len(same) > 1 or (same and same[0] != len(r["context"]) - 1):
        errs.append("at most one same_turn entry, and last")
    return errs


def check(data: Path = DATA, guide: Path = GUIDE) -> tuple[list[str], dict]:
    labels = guide_labels(guide)
    labels_ok = set(labels)
    errors: list[str] = []
    seen: set[str] = set()
    report = {}
    if len(labels) != 18:
        errors.append(f"guide label table: expected 18 labels, found {len(labels)}")
    for source in SOURCES:
        ipath, spath = data / f"{source}.jsonl", data / f"{source}_sessions.jsonl"
        if not ipath.is_file() or not spath.is_file():
            errors.append(f"{source}: missing {ipath.name} or {spath.name}")
            continue
        sessions = {}
        for n, line in enumerate(spath.read_text(encoding="utf-8").splitlines(), 1):
            try:
                s = json.loads(line)
            except json.JSONDecodeError as exc:
                errors.append(f"{spath.name}:{n}: {exc}")
                continue
            ok = (isinstance(s.get("session"), str) and isinstance(s.get("turns"), list)
                  and all(isinstance(t, dict) and t.get("speaker") in ("clinician", "patient")
                          and isinstance(t.get("text"), str) for t in s["turns"]))
            if not ok:
                errors.append(f"{spath.name}:{n}: bad session shape")
                continue
            if s["session"] in sessions:
                errors.append(f"{spath.name}:{n}: duplicate session {s['session']}")
            sessions[s["session"]] = s
            nc = sum(t["speaker"] == "clinician" for t in s["turns"])
            if not 10 <= nc <= 40:
                errors.append(f"{source}/{s['session']}: {nc} clinician turns (want 10-40)")
        counts: Counter = Counter()
        nrows = 0
        unlabelled = 0
        for n, line in enumerate(ipath.read_text(encoding="utf-8").splitlines(), 1):
            where = f"{ipath.name}:{n}"
            try:
                r = json.loads(line)
            except json.JSONDecodeError as exc:
                errors.append(f"{where}: {exc}")
                continue
            errs = check_row(r, labels_ok)
            if r.get("source") != source:
                errs.append("source field differs from file")
            rid = r.get("id")
            if rid in seen:
                errs.append(f"duplicate id {rid}")
            seen.add(rid)
            m = ID_RE.match(str(rid))
            sess = sessions.get(r.get("session"))
            if sess is None:
                errs.append("session not in the sessions file")
            elif m:
                ti = int(m["turn"])
                turns = sess["turns"]
                if ti >= len(turns) or turns[ti]["speaker"] != "clinician":
                    errs.append("turn index is not a clinician turn")
                elif r["text"] not in turns[ti]["text"]:
                    errs.append("text not in its transcript turn")
                else:
                    want = [{"speaker": t["speaker"], "text": t["text"]} for t in turns[max(0, ti - 3):ti]]
                    got = [{"speaker": c.get("speaker"), "text": c.get("text")}
                           for c in r["context"] if not c.get("same_turn")]
                    if want != got:
                        errs.append("context differs from the 3 preceding transcript turns")
            errors.extend(f"{where} ({rid}): {e}" for e in errs)
            nrows += 1
            counts.update(r.get("labels", []))
            unlabelled += not r.get("labels")
        report[source] = {"sessions": len(sessions), "sentences": nrows, "no_label": unlabelled,
                          "labels": {lab: counts.get(lab, 0) for lab in labels}}
    return errors, report


def markdown(report: dict) -> str:
    srcs = [s for s in SOURCES if s in report]
    labels = list(next(iter(report.values()))["labels"]) if report else []
    lines = ["| label | " + " | ".join(srcs) + " | total |", "| --- |" + " ---: |" * (len(srcs) + 1)]
    for key, name in (("sessions", "sessions"), ("sentences", "clinician sentences"), ("no_label", "(no label)")):
        vals = [report[s][key] for s in srcs]
        lines.append(f"| {name} | " + " | ".join(map(str, vals)) + f" | {sum(vals)} |")
    for lab in labels:
        vals = [report[s]["labels"][lab] for s in srcs]
        lines.append(f"| `{lab}` | " + " | ".join(map(str, vals)) + f" | {sum(vals)} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    errors, report = check()
    if "--markdown" in argv:
        print(markdown(report))
    else:
        for source, rep in report.items():
            print(f"{source}: {rep['sessions']} sessions, {rep['sentences']} sentences, {rep['no_label']} with no label")
            for lab, c in rep["labels"].items():
                print(f"  {lab:24s} {c}")
    for e in errors[:200]:
        print("ERROR", e, file=sys.stderr)
    if errors:
        print(f"{len(errors)} error(s)", file=sys.stderr)
        return 1
    print("dialogues_check: OK", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
