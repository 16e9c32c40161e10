"""Every labelled clinician-sentence source of the behaviour classifier, in one shape.

    from tools.training.behaviour_sources import load_sources
    data = load_sources()          # data.train: rows the heads may learn from; data.gold_test: held-out gold rows

A row is ``{"id", "text", "labels" (the 11 interface labels), "source", "group", "origin", "ctx"}``:
``ctx`` is the sentence's dialogue context (edge_agent.behaviours.features.Context: the previous
patient turn and whether the sentence opens the clinician's reply), computed for PriMock57 from
the transcripts exactly as the device computes it (conversation.sentence_contexts) and for the
dialogue sources from their ``context`` field; None for the sources of single sentences;
``group`` is the session (consultation, dialogue, written pseudo-group) and never
crosses sources, so grouped splits keep a session on one side.

Sources (the unit of leave-one-source-out):

| source | file | labels |
| --- | --- | --- |
| ``primock57`` | tools/training/data/behaviours/primock57.jsonl + tools/gold/gold/labels_primock57.jsonl | UK telehealth GP consultations. The gold labels (two blind annotators + adjudication, current guide) replace the older single-annotator labels (previous guide) on the 891 gold sentences |
| ``mi_counselling``, ``consultations_other``, ``health_coaching`` | tools/training/data/dialogues/*.jsonl | dialogues written and labelled for the project (current guide) |
| ``written`` | tools/training/data/behaviours/written.jsonl | rare-label and boundary sentences (previous guide) |
| ``probe_mi`` | tools/encoder/probe_mi.jsonl | MI-counselling-style sentences written by the encoder engineer (MISC codes mapped to the guide) |
| ``miti_forms`` | tools/training/data/forms/miti_forms.tsv | sentences written by the classifier engineer from the guide's MITI/MISC definitions in the forms the others lack (ASR text without punctuation, fillers before the question word, embedded questions, statement + question, reflections as plain statements); see tools/training/data/forms/README.md |

**What is held back.** The 29 PriMock57 consultations of the coaching bench's held-out
half (tools/bench/coaching.py ``split``) are never trained on, with either label set:
their gold sentences are the in-domain gold test of the shipped model, and keeping
the whole consultation out avoids same-session leakage into the coaching bench.
The 18-label guide is reduced to the 11 interface labels (``complex_reflection`` and
``summary`` imply ``reflection``; ``advice_with_permission`` implies ``advice``; the
other added labels are not model outputs).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from edge_agent.behaviours.features import Context, tokens
from edge_agent.behaviours.labels import LABELS

ROOT = Path(__file__).resolve().parents[2]
BEHAVIOURS = ROOT / "tools" / "training" / "data" / "behaviours"
DIALOGUES = ROOT / "tools" / "training" / "data" / "dialogues"
GOLD = ROOT / "tools" / "gold" / "gold" / "labels_primock57.jsonl"
PROBE = ROOT / "tools" / "encoder" / "probe_mi.jsonl"
FORMS = ROOT / "tools" / "training" / "data" / "forms" / "miti_forms.tsv"
DIALOGUE_SOURCES = ("mi_counselling", "consultations_other", "health_coaching")
SOURCES = ("primock57", *DIALOGUE_SOURCES, "written", "probe_mi", "miti_forms")
GUIDE_EXTRA = ("ice_question", "safety_netting", "signposting", "summary", "affirmation", "complex_reflection", "advice_with_permission")
IMPLIES = {"complex_reflection": "reflection", "summary": "reflection", "advice_with_permission": "advice"}


def norm(text: str) -> str:
    """Normalised text used to find the same sentence in two places."""
    return " ".join(tokens(text))


def to_interface(labels: list[str]) -> list[str]:
    got = set(labels) | {IMPLIES[x] for x in labels if x in IMPLIES}
    return [lab for lab in LABELS if lab in got]


def _jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def bench_split() -> tuple[list[str], list[str]]:
    """(development, held-out) PriMock57 consultations of the coaching bench."""
    from tools.bench.coaching import gold_ids, split

    return split(gold_ids())


@dataclass
class Sources:
    train: list[dict]  # every row the heads may learn from (all sources; PriMock57 development half only)
    gold_all: list[dict]  # the 891 gold rows (all 57 consultations), gold labels: the primock57 LOSO test
    gold_test: list[dict]  # gold rows of the 29 held-out consultations: in-domain test of the shipped model
    old_primock_rows: int  # PriMock57 rows with the older labels in ``train``
    held_out_consultations: list[str]

    def by_source(self) -> dict[str, list[dict]]:
        out: dict[str, list[dict]] = {s: [] for s in SOURCES}
        for r in self.train:
            out[r["source"]].append(r)
        return out


def load_sources(old_primock_labels: bool = True) -> Sources:
    """All sources. ``old_primock_labels`` False keeps only the gold-labelled PriMock57 rows."""
    dev, held = bench_split()
    dev_set, held_set = set(dev), set(held)
    gold = {r["id"]: r for r in _jsonl(GOLD)}
    train: list[dict] = []
    gold_all: list[dict] = []
    n_old = 0
    for r in _jsonl(BEHAVIOURS / "primock57.jsonl"):
        cons = r["consultation"]
        g = gold.get(r["id"])
        if g is not None:
            gold_all.append({"id": r["id"], "text": g["text"], "labels": to_interface(g["labels"]), "source": "primock57",
                             "group": cons, "origin": "gold"})
        if cons in held_set:
            continue
        assert cons in dev_set, cons
        if g is not None:
            train.append(gold_all[-1])
        elif old_primock_labels:
            train.append({"id": r["id"], "text": r["text"], "labels": to_interface(r["labels"]), "source": "primock57",
                          "group": cons, "origin": "primock57-old"})
            n_old += 1
    ctx = primock_contexts()
    for r in [*train, *gold_all]:
        r["ctx"] = ctx.get(r["id"])
    missing = set(gold) - {r["id"] for r in gold_all}
    assert not missing, f"gold ids not in primock57.jsonl: {sorted(missing)[:3]}"
    for name in DIALOGUE_SOURCES:
        for r in _jsonl(DIALOGUES / f"{name}.jsonl"):
            train.append({"id": r["id"], "text": r["text"], "labels": to_interface(r["labels"]), "source": name,
                          "group": f"{name}:{r['session']}", "origin": name, "ctx": dialogue_context(r)})
    for r in _jsonl(BEHAVIOURS / "written.jsonl"):
        train.append({"id": r["id"], "text": r["text"], "labels": to_interface(r["labels"]), "source": "written",
                      "group": r["group"], "origin": "written", "ctx": None})
    for r in _jsonl(PROBE):
        train.append({"id": r["id"], "text": r["text"], "labels": to_interface(r["labels"]), "source": "probe_mi",
                      "group": r["group"], "origin": "probe_mi", "ctx": None})
    for r in forms_rows():
        train.append(r)
    gold_test = [r for r in gold_all if r["group"] in held_set]
    ids = [r["id"] for r in train]
    assert len(ids) == len(set(ids)), "duplicate ids across sources"
    return Sources(train, gold_all, gold_test, n_old, sorted(held_set))


def primock_contexts() -> dict[str, Context]:
    """Dialogue context of every PriMock57 clinician sentence, by row id (``<consultation>:tNNN:sNN``), from the
    transcripts through the device's own turn building (so training and the device agree by construction)."""
    from edge_agent.behaviours.conversation import build_turns, sentence_contexts
    from tools.corpus.primock import iter_consultations, utterances_from_consultation

    out: dict[str, Context] = {}
    for cons in iter_consultations():
        for sid, c in sentence_contexts(build_turns(utterances_from_consultation(cons))).items():
            out[f"{cons.id}:{sid}"] = c
    return out


def dialogue_context(row: dict) -> Context:
    """Context of a dialogue-source row from its ``context`` field (the turns before it, oldest first; the
    clinician's own earlier sentences of the same turn carry ``same_turn``)."""
    items = row.get("context") or []
    patient = [c["text"] for c in items if c["speaker"] == "patient"]
    same_turn = any(c.get("same_turn") for c in items)
    starts = bool(items) and items[-1]["speaker"] == "patient" and not same_turn
    return Context(patient[-1] if patient else None, starts)


def forms_rows(path: Path = FORMS) -> list[dict]:
    """The ``miti_forms`` source: ``group <TAB> labels <TAB> text`` lines (``#`` comments)."""
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        group, labels, text = line.split("\t")
        bad = [x for x in labels.split(",") if x not in LABELS and x not in GUIDE_EXTRA]
        assert not bad, f"{path.name}: unknown label(s) {bad} in {text!r}"
        out.append({"id": f"miti_forms:{len(out):04d}", "text": text, "labels": to_interface(labels.split(",")),
                    "source": "miti_forms", "group": f"miti_forms-{group}", "origin": "miti_forms", "ctx": None})
    return out


def training_texts() -> set[str]:
    """Normalised text of every sentence any source holds (for tests that must use unseen sentences)."""
    data = load_sources()
    out = {norm(r["text"]) for r in data.train} | {norm(r["text"]) for r in data.gold_all}
    out |= {norm(r["text"]) for r in _jsonl(BEHAVIOURS / "primock57.jsonl")}
    return out
