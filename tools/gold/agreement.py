"""Inter-annotator agreement for the behaviour gold set (issue 13).

    # sentence labels: per-label Cohen's kappa, observed agreement, prevalence, confusion
    PYTHONPATH=. python tools/gold/agreement.py labels a1 a2
    # event gold: opening, redirection, interruptions, monologues, utterances, flags
    PYTHONPATH=. python tools/gold/agreement.py events a1 a2

``a1``/``a2`` are annotator names (folders under ``tools/gold/annotations/``) or paths
(a labels ``.jsonl`` file, or an ``events`` folder). Disagreements are written for
adjudication to ``tools/gold/adjudication/labels_todo.jsonl`` (each differing item with
both annotators' labels side by side) and ``events_todo.jsonl``.

Kappa is computed per label on present/absent per item, over the items both annotators
returned. It uses scikit-learn's ``cohen_kappa_score`` when installed and the same
formula in numpy otherwise: kappa = (p_o - p_e) / (1 - p_e). When both annotators give
one constant answer for a label (p_e = 1) kappa is undefined and printed as n/a.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edge_agent.behaviours.labels import LABELS as INTERFACE_LABELS

HERE = Path(__file__).resolve().parent
PACKET = HERE / "packets" / "labels_primock57.jsonl"
SAMPLING = HERE / "sampling" / "labels_primock57.sampling.jsonl"
ANNOTATIONS = HERE / "annotations"
ANNOTATORS = ("annotator-a", "annotator-b")  # the two blind annotators whose files are committed
ADJUDICATION = HERE / "adjudication"
EVENT_SCHEMA = HERE / "events.schema.json"

# docs/labelling.md §2: the eleven interface labels, then the seven added ones.
LABELS: tuple[str, ...] = INTERFACE_LABELS + (
    "ice_question",
    "safety_netting",
    "signposting",
    "summary",
    "affirmation",
    "complex_reflection",
    "advice_with_permission",
)
# label -> label it requires (docs/labelling.md §6)
IMPLIES = {"complex_reflection": "reflection", "summary": "reflection", "advice_with_permission": "advice"}
QUESTION_ONLY = ("agenda_solicitation", "ice_question", "teach_back")
KAPPA_BAR, KAPPA_TARGET, MIN_SUPPORT = 0.6, 0.7, 20


class AnnotationError(ValueError):
    """A returned annotation file breaks the format in tools/gold/README.md."""


# --------------------------------------------------------------------------- kappa


def cohen_kappa(a, b) -> float:
    """Cohen's kappa of two equal-length label sequences (any hashable labels).

    Returns nan when chance agreement is 1 (both raters constant and identical).
    """
    a = np.asarray(list(a))
    b = np.asarray(list(b))
    if a.shape != b.shape or a.ndim != 1 or a.size == 0:
        raise ValueError("kappa needs two non-empty sequences of the same length")
    cats = sorted(set(a.tolist()) | set(b.tolist()), key=str)
    if len(cats) == 1:
        return float("nan")
    try:
        from sklearn.metrics import cohen_kappa_score  # optional (build-models extra)
    except ImportError:
        cohen_kappa_score = None
    if cohen_kappa_score is not None:
        return float(cohen_kappa_score(a, b))
    p_o = float(np.mean(a == b))
    p_e = sum(float(np.mean(a == c)) * float(np.mean(b == c)) for c in cats)
    if p_e >= 1.0:
        return float("nan")
    return (p_o - p_e) / (1.0 - p_e)


def _fmt(x: float, nd: int = 3) -> str:
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{nd}f}"


# --------------------------------------------------------------------------- labels


def _resolve(who: str, kind: str) -> tuple[str, Path]:
    """(annotator name, path) from a name under annotations/ or an explicit path."""
    sub = "labels_primock57.jsonl" if kind == "labels" else "events"
    p = Path(who)
    if not p.exists():
        return who, ANNOTATIONS / who / sub
    if p.is_dir() and (p / sub).exists():  # the annotator's folder
        return p.name, p / sub
    return p.parent.name, p  # the labels file or the events folder itself


def load_label_file(path: Path) -> dict[str, dict]:
    """{id: {"labels": set, "note": str}}; raises AnnotationError on any format problem."""
    if not path.is_file():
        raise AnnotationError(f"{path}: not found")
    out: dict[str, dict] = {}
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise AnnotationError(f"{path}:{n}: not JSON ({exc.msg})") from None
        if not isinstance(row, dict) or not isinstance(row.get("id"), str) or not isinstance(row.get("labels"), list):
            raise AnnotationError(f'{path}:{n}: needs {{"id": str, "labels": [...]}}')
        bad = [x for x in row["labels"] if x not in LABELS]
        if bad:
            raise AnnotationError(f"{path}:{n}: unknown label(s) {bad}; see docs/labelling.md §2")
        if row["id"] in out:
            raise AnnotationError(f"{path}:{n}: duplicate id {row['id']}")
        out[row["id"]] = {"labels": set(row["labels"]), "note": str(row.get("note") or "")}
    return out


def load_jsonl(path: Path) -> dict[str, dict]:
    if not path.is_file():
        return {}
    rows = (json.loads(x) for x in path.read_text(encoding="utf-8").splitlines() if x.strip())
    return {r["id"]: r for r in rows}


def rule_warnings(ann: dict[str, dict]) -> list[str]:
    """Guide rules a label set breaks (reported, not fatal)."""
    out = []
    for sid, row in ann.items():
        labs = row["labels"]
        for sub, sup in IMPLIES.items():
            if sub in labs and sup not in labs:
                out.append(f"{sid}: {sub} without {sup}")
        if {"open_question", "closed_question"} <= labs:
            out.append(f"{sid}: both open_question and closed_question")
        for q in QUESTION_ONLY:
            if q in labs and not labs & {"open_question", "closed_question"}:
                out.append(f"{sid}: {q} on a non-question")
    return out


@dataclass
class LabelStats:
    label: str
    n: int
    both: int
    a_only: int
    b_only: int
    neither: int
    kappa: float

    @property
    def observed(self) -> float:
        return (self.both + self.neither) / self.n

    @property
    def prevalence(self) -> float:
        """Mean share of items the two annotators marked with the label."""
        return (2 * self.both + self.a_only + self.b_only) / (2 * self.n)

    @property
    def support(self) -> int:
        """Items at least one annotator marked."""
        return self.both + self.a_only + self.b_only

    @property
    def verdict(self) -> str:
        if math.isnan(self.kappa) or self.support < MIN_SUPPORT:
            return "too few"
        if self.kappa >= KAPPA_TARGET:
            return "target"
        return "bar" if self.kappa >= KAPPA_BAR else "below"


def label_stats(a: dict[str, dict], b: dict[str, dict], ids: list[str]) -> list[LabelStats]:
    out = []
    for lab in LABELS:
        xa = np.array([lab in a[i]["labels"] for i in ids], dtype=bool)
        xb = np.array([lab in b[i]["labels"] for i in ids], dtype=bool)
        out.append(
            LabelStats(
                label=lab,
                n=len(ids),
                both=int(np.sum(xa & xb)),
                a_only=int(np.sum(xa & ~xb)),
                b_only=int(np.sum(~xa & xb)),
                neither=int(np.sum(~xa & ~xb)),
                kappa=cohen_kappa(xa.astype(int), xb.astype(int)),
            )
        )
    return out


def disagreements(a: dict, b: dict, ids: list[str], names: tuple[str, str], packet: dict[str, dict]) -> list[dict]:
    """One adjudication row per item whose label sets differ."""
    rows = []
    for i in ids:
        la, lb = a[i]["labels"], b[i]["labels"]
        if la == lb:
            continue
        item = packet.get(i, {"id": i})
        rows.append(
            {
                "id": i,
                "text": item.get("text"),
                "differs": [x for x in LABELS if x in la ^ lb],
                "agreed": [x for x in LABELS if x in la & lb],
                names[0]: {"labels": [x for x in LABELS if x in la], "note": a[i]["note"]},
                names[1]: {"labels": [x for x in LABELS if x in lb], "note": b[i]["note"]},
                "final": None,
                "item": item,
            }
        )
    return rows


def labels_report(who_a: str, who_b: str, packet_path: Path = PACKET, sampling_path: Path = SAMPLING,
                  out_dir: Path = ADJUDICATION, stream=sys.stdout) -> list[LabelStats]:
    name_a, path_a = _resolve(who_a, "labels")
    name_b, path_b = _resolve(who_b, "labels")
    if name_a == name_b:
        name_a, name_b = f"{name_a}#1", f"{name_b}#2"
    a, b = load_label_file(path_a), load_label_file(path_b)
    packet = load_jsonl(packet_path)
    p = lambda *x: print(*x, file=stream)  # noqa: E731
    ids = sorted(set(a) & set(b))
    if not ids:
        raise AnnotationError("the two files share no item ids")
    for name, ann in ((name_a, a), (name_b, b)):
        missing = len(set(packet) - set(ann)) if packet else 0
        extra = sorted(set(ann) - set(packet)) if packet else []
        p(f"{name}: {len(ann)} items" + (f", {missing} packet items missing" if missing else "")
          + (f", {len(extra)} ids not in the packet" if extra else ""))
        warns = rule_warnings(ann)
        for w in warns[:10]:
            p(f"  rule: {w}")
        if len(warns) > 10:
            p(f"  rule: ... and {len(warns) - 10} more (docs/labelling.md §6)")
    p(f"compared: {len(ids)} items both returned\n")

    stats = label_stats(a, b, ids)
    p(f"{'label':24s} {'kappa':>6s} {'p_o':>6s} {'prev':>6s} {'both':>5s} {'A only':>6s} {'B only':>6s} {'neither':>7s}  verdict")
    for s in stats:
        p(f"{s.label:24s} {_fmt(s.kappa):>6s} {_fmt(s.observed):>6s} {_fmt(s.prevalence):>6s} {s.both:5d} {s.a_only:6d} "
          f"{s.b_only:6d} {s.neither:7d}  {s.verdict}")
    p(f"\nA = {name_a}, B = {name_b}. verdict: target = kappa >= {KAPPA_TARGET}; bar = >= {KAPPA_BAR} (may be shown "
      f"to clinicians); below; too few = under {MIN_SUPPORT} items marked by either (docs/labelling.md §8).")

    sampling = load_jsonl(sampling_path)
    rnd = [i for i in ids if sampling.get(i, {}).get("stratum") == "random"]
    if rnd:
        p(f"\nRandom stratum only ({len(rnd)} items; natural prevalence, kappa):")
        for s in label_stats(a, b, rnd):
            if s.support:
                p(f"  {s.label:24s} prev {_fmt(s.prevalence)}  kappa {_fmt(s.kappa)}")

    # open vs closed among items both treated as questions
    both_q = [i for i in ids if a[i]["labels"] & {"open_question", "closed_question"}
              and b[i]["labels"] & {"open_question", "closed_question"}]
    if both_q:
        qa = ["open" if "open_question" in a[i]["labels"] else "closed" for i in both_q]
        qb = ["open" if "open_question" in b[i]["labels"] else "closed" for i in both_q]
        c = Counter(zip(qa, qb))
        p(f"\nOpen vs closed on {len(both_q)} items both call questions: kappa {_fmt(cohen_kappa(qa, qb))}; "
          f"open/open {c[('open', 'open')]}, open/closed {c[('open', 'closed')]}, closed/open {c[('closed', 'open')]}, "
          f"closed/closed {c[('closed', 'closed')]}")

    rows = disagreements(a, b, ids, (name_a, name_b), packet)
    out_dir.mkdir(parents=True, exist_ok=True)
    out = out_dir / "labels_todo.jsonl"
    out.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    p(f"\n{len(rows)} items disagree -> {out}")
    return stats


# --------------------------------------------------------------------------- events


_TYPES = {"object": dict, "array": list, "string": str, "boolean": bool, "null": type(None)}


def _schema_errors(doc, schema: dict, root: dict, path: str) -> list[str]:
    """Errors of ``doc`` against the JSON Schema subset events.schema.json uses."""
    if "$ref" in schema:
        schema = root["$defs"][schema["$ref"].rsplit("/", 1)[-1]]
    if "oneOf" in schema:
        branches = [_schema_errors(doc, s, root, path) for s in schema["oneOf"]]
        ok = sum(not b for b in branches)
        if ok == 1:
            return []
        if ok == 0:  # report the branch of the right type (e.g. the object, not null)
            typed = [b for b in branches if not any(e.endswith(("expected null", "expected object")) for e in b)]
            return typed[0] if typed else [f"{path or '(top)'}: matches none of the allowed forms"]
        return [f"{path or '(top)'}: matches {ok} of the allowed forms, not exactly one"]
    errs: list[str] = []
    if "const" in schema and doc != schema["const"]:
        return [f"{path or '(top)'}: must be {schema['const']!r}"]
    if "enum" in schema and doc not in schema["enum"]:
        return [f"{path or '(top)'}: {doc!r} is not one of {schema['enum']}"]
    if "type" in schema:
        types = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]

        def is_type(t):
            if t == "integer":
                return isinstance(doc, int) and not isinstance(doc, bool)
            if t == "number":
                return isinstance(doc, (int, float)) and not isinstance(doc, bool)
            return isinstance(doc, _TYPES[t]) and not (t != "boolean" and isinstance(doc, bool))

        if not any(is_type(t) for t in types):
            return [f"{path or '(top)'}: expected {' or '.join(types)}"]
    if isinstance(doc, (int, float)) and not isinstance(doc, bool):
        if "minimum" in schema and doc < schema["minimum"]:
            errs.append(f"{path or '(top)'}: below {schema['minimum']}")
        if "exclusiveMinimum" in schema and doc <= schema["exclusiveMinimum"]:
            errs.append(f"{path or '(top)'}: must be over {schema['exclusiveMinimum']}")
    if isinstance(doc, str):
        if len(doc) < schema.get("minLength", 0):
            errs.append(f"{path or '(top)'}: empty")
        if "pattern" in schema and not re.search(schema["pattern"], doc):
            errs.append(f"{path or '(top)'}: {doc!r} does not match {schema['pattern']}")
    if isinstance(doc, list):
        if len(doc) < schema.get("minItems", 0):
            errs.append(f"{path or '(top)'}: needs at least {schema['minItems']} items")
        if schema.get("uniqueItems") and len({json.dumps(x, sort_keys=True) for x in doc}) != len(doc):
            errs.append(f"{path or '(top)'}: repeated items")
        for i, x in enumerate(doc):
            errs += _schema_errors(x, schema.get("items", {}), root, f"{path}/{i}")
    if isinstance(doc, dict):
        props = schema.get("properties", {})
        errs += [f"{path or '(top)'}: missing {k!r}" for k in schema.get("required", []) if k not in doc]
        if schema.get("additionalProperties") is False:
            errs += [f"{path or '(top)'}: unknown key {k!r}" for k in doc if k not in props]
        for k, v in doc.items():
            if k in props:
                errs += _schema_errors(v, props[k], root, f"{path}/{k}")
    return errs


def validate_event_file(doc: dict, where: str) -> None:
    """Check one event gold file against events.schema.json (the subset of JSON Schema it uses)."""
    schema = json.loads(EVENT_SCHEMA.read_text(encoding="utf-8"))
    errs = _schema_errors(doc, schema, schema, "")
    if errs:
        raise AnnotationError(f"{where}: " + "; ".join(e.lstrip("/") for e in errs[:5]))


def load_event_dir(path: Path) -> dict[str, dict]:
    if not path.is_dir():
        raise AnnotationError(f"{path}: no events folder")
    out = {}
    for f in sorted(path.glob("*.json")):
        try:
            doc = json.loads(f.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise AnnotationError(f"{f}: not JSON ({exc.msg})") from None
        validate_event_file(doc, str(f))
        out[doc["consultation"]] = doc
    return out


def match_times(ta: list[float], tb: list[float], tol: float) -> list[tuple[int, int]]:
    """One-to-one matches (index in ta, index in tb) within tol seconds, closest pairs first."""
    pairs = sorted((abs(x - y), i, j) for i, x in enumerate(ta) for j, y in enumerate(tb) if abs(x - y) <= tol)
    used_a, used_b, out = set(), set(), []
    for _, i, j in pairs:
        if i not in used_a and j not in used_b:
            used_a.add(i)
            used_b.add(j)
            out.append((i, j))
    return sorted(out)


def match_turns(ta: list[int], tb: list[int], tol: int = 1) -> list[tuple[int, int]]:
    return match_times([float(x) for x in ta], [float(x) for x in tb], float(tol))


def f1(tp: int, a_only: int, b_only: int) -> float:
    d = 2 * tp + a_only + b_only
    return float("nan") if d == 0 else 2 * tp / d


def interval_overlap(a: list[tuple[float, float]], b: list[tuple[float, float]]) -> tuple[float, float]:
    """(seconds in both, seconds in either) for two sets of intervals."""

    def union(iv):
        out = []
        for s, e in sorted(iv):
            if out and s <= out[-1][1]:
                out[-1][1] = max(out[-1][1], e)
            else:
                out.append([s, e])
        return out

    ua, ub = union(a), union(b)
    inter = sum(max(0.0, min(e1, e2) - max(s1, s2)) for s1, e1 in ua for s2, e2 in ub)
    total = sum(e - s for s, e in ua) + sum(e - s for s, e in ub) - inter
    return inter, total


@dataclass
class EventTally:
    tp: int = 0
    a_only: int = 0
    b_only: int = 0
    rows: list = field(default_factory=list)


UTTERANCE_LISTS = ("ice_questions", "teach_back_requests", "safety_netting", "agenda_questions", "stacked_questions")


def compare_events(a: dict[str, dict], b: dict[str, dict], names: tuple[str, str]) -> tuple[dict, list[dict]]:
    """Per-aspect agreement over the consultations both coded, and adjudication rows."""
    cons = sorted(set(a) & set(b))
    todo: list[dict] = []
    res: dict = {"consultations": len(cons)}

    def row(cid, aspect, va, vb):
        todo.append({"consultation": cid, "aspect": aspect, names[0]: va, names[1]: vb, "final": None})

    oq_ok = os_ok = red_ok = 0
    red_a, red_b = [], []
    intr = EventTally()
    kinds_a, kinds_b = [], []
    inter_s = union_s = 0.0
    lists = {k: EventTally() for k in UTTERANCE_LISTS}
    flags = {"emergency_escalation": ([], []), "plan_said_back": ([], [])}
    for cid in cons:
        x, y = a[cid], b[cid]
        qa, qb = x["opening_question"], y["opening_question"]
        if (qa is None and qb is None) or (qa and qb and abs(qa["end"] - qb["end"]) <= 2.0):
            oq_ok += 1
        else:
            row(cid, "opening_question", qa, qb)
        sa, sb = x["opening_statement"], y["opening_statement"]
        if (sa is None and sb is None) or (sa and sb and abs(sa["end"] - sb["end"]) <= 2.0 and sa["outcome"] == sb["outcome"]):
            os_ok += 1
        else:
            row(cid, "opening_statement", sa, sb)
        ra = bool(sa and sa["outcome"] == "redirected")
        rb = bool(sb and sb["outcome"] == "redirected")
        red_a.append(ra)
        red_b.append(rb)
        red_ok += ra == rb

        ia = [o for o in x["overlaps"] if o["kind"] == "interruption"]
        ib = [o for o in y["overlaps"] if o["kind"] == "interruption"]
        m = match_times([o["time"] for o in ia], [o["time"] for o in ib], 1.0)
        intr.tp += len(m)
        ma, mb = {i for i, _ in m}, {j for _, j in m}
        for i, o in enumerate(ia):
            if i not in ma:
                intr.a_only += 1
                row(cid, "interruption", o, None)
        for j, o in enumerate(ib):
            if j not in mb:
                intr.b_only += 1
                row(cid, "interruption", None, o)
        # kinds of all overlaps both recorded (matched by time)
        for i, j in match_times([o["time"] for o in x["overlaps"]], [o["time"] for o in y["overlaps"]], 1.0):
            kinds_a.append(x["overlaps"][i]["kind"])
            kinds_b.append(y["overlaps"][j]["kind"])

        ivs_a = [(mo["start"], mo["end"]) for mo in x["monologues"]]
        ivs_b = [(mo["start"], mo["end"]) for mo in y["monologues"]]
        inter, union = interval_overlap(ivs_a, ivs_b)
        inter_s += inter
        union_s += union
        if union and inter / union < 0.5:
            row(cid, "monologues", x["monologues"], y["monologues"])

        for key, tally in lists.items():
            la, lb = x[key], y[key]
            m = match_turns([e["turn"] for e in la], [e["turn"] for e in lb])
            tally.tp += len(m)
            tally.a_only += len(la) - len(m)
            tally.b_only += len(lb) - len(m)
            if len(m) != len(la) or len(m) != len(lb):
                ma, mb = {i for i, _ in m}, {j for _, j in m}
                row(cid, key, [e for i, e in enumerate(la) if i not in ma], [e for j, e in enumerate(lb) if j not in mb])
        for key, (fa, fb) in flags.items():
            va, vb = bool(x[key]["value"]), bool(y[key]["value"])
            fa.append(va)
            fb.append(vb)
            if va != vb:
                row(cid, key, x[key], y[key])

    n = len(cons) or 1
    res["opening_question_within_2s"] = oq_ok / n
    res["opening_statement_end_within_2s_same_outcome"] = os_ok / n
    res["redirected_agreement"] = red_ok / n
    res["redirected_kappa"] = cohen_kappa(red_a, red_b) if cons else float("nan")
    res["interruptions"] = {"matched": intr.tp, "a_only": intr.a_only, "b_only": intr.b_only,
                            "f1": f1(intr.tp, intr.a_only, intr.b_only)}
    res["overlap_kind_kappa"] = cohen_kappa(kinds_a, kinds_b) if kinds_a else float("nan")
    res["overlaps_matched"] = len(kinds_a)
    res["monologue_iou"] = inter_s / union_s if union_s else float("nan")
    for key, t in lists.items():
        res[key] = {"matched": t.tp, "a_only": t.a_only, "b_only": t.b_only, "f1": f1(t.tp, t.a_only, t.b_only)}
    for key, (fa, fb) in flags.items():
        res[key] = {"agreement": float(np.mean(np.array(fa) == np.array(fb))) if fa else float("nan"),
                    "kappa": cohen_kappa(fa, fb) if fa else float("nan"), "a_true": sum(fa), "b_true": sum(fb)}
    return res, todo


def events_report(who_a: str, who_b: str, out_dir: Path = ADJUDICATION, stream=sys.stdout) -> dict:
    name_a, path_a = _resolve(who_a, "events")
    name_b, path_b = _resolve(who_b, "events")
    if name_a == name_b:
        name_a, name_b = f"{name_a}#1", f"{name_b}#2"
    a, b = load_event_dir(path_a), load_event_dir(path_b)
    if not set(a) & set(b):
        raise AnnotationError(f"{path_a} and {path_b} share no consultation")
    res, todo = compare_events(a, b, (name_a, name_b))
    p = lambda *x: print(*x, file=stream)  # noqa: E731
    p(f"{name_a}: {len(a)} visits, {name_b}: {len(b)} visits, both: {res['consultations']}")
    p(f"opening question (turn end within 2 s):           {_fmt(res['opening_question_within_2s'])}")
    p(f"opening statement (end within 2 s, same outcome):  {_fmt(res['opening_statement_end_within_2s_same_outcome'])}")
    p(f"redirected flag: agreement {_fmt(res['redirected_agreement'])}, kappa {_fmt(res['redirected_kappa'])}")
    it = res["interruptions"]
    p(f"interruptions (matched within 1 s): {it['matched']} matched, {it['a_only']} A only, {it['b_only']} B only, "
      f"F1 {_fmt(it['f1'])}")
    p(f"overlap kinds on {res['overlaps_matched']} overlaps both recorded: kappa {_fmt(res['overlap_kind_kappa'])}")
    p(f"monologues (> 60 s): time overlap IoU {_fmt(res['monologue_iou'])}")
    for key in UTTERANCE_LISTS:
        t = res[key]
        p(f"{key:22s} (turn +-1): {t['matched']} matched, {t['a_only']} A only, {t['b_only']} B only, F1 {_fmt(t['f1'])}")
    for key in ("emergency_escalation", "plan_said_back"):
        t = res[key]
        p(f"{key:22s}: agreement {_fmt(t['agreement'])}, kappa {_fmt(t['kappa'])} (true: A {t['a_true']}, B {t['b_true']})")
    out_dir.mkdir(parents=True, exist_ok=True)
    out = out_dir / "events_todo.jsonl"
    out.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in todo), encoding="utf-8")
    p(f"\n{len(todo)} event disagreements -> {out}")
    return res


RELIABILITY_MODULE = Path(__file__).resolve().parents[2] / "edge_agent" / "behaviours" / "reliability.py"


def reliability_module(stats: list[LabelStats], who: tuple[str, str]) -> str:
    """``edge_agent/behaviours/reliability.py``: which interface labels clinicians may see (docs/labelling.md §8)."""
    rows = [s for s in stats if s.label in INTERFACE_LABELS]
    lines = [
        '"""Inter-annotator agreement per label on the PriMock57 gold packet, and which labels may be shown.',
        "",
        "Generated by ``python -m tools.gold.agreement labels "
        f"{who[0]} {who[1]} --write-reliability``; do not edit by hand.",
        "A label reaches clinicians (report counts, phone) and the population records only when two",
        f"independent annotators agreed on it with Cohen's kappa >= {KAPPA_BAR} over at least {MIN_SUPPORT} items",
        "(docs/labelling.md §8); below that a count would state as fact what coders cannot agree on.",
        '"""',
        "",
        "from __future__ import annotations",
        "",
        "# label: (kappa or None when no item carries it, items at least one annotator marked)",
        "AGREEMENT: dict[str, tuple[float | None, int]] = {",
    ]
    for s in rows:
        kappa = None if math.isnan(s.kappa) else round(s.kappa, 3)
        lines.append(f'    "{s.label}": ({kappa}, {s.support}),')
    lines += [
        "}",
        f"KAPPA_BAR = {KAPPA_BAR}",
        f"MIN_ITEMS = {MIN_SUPPORT}",
        "SHOWN: tuple[str, ...] = tuple(",
        "    label for label, (kappa, items) in AGREEMENT.items() if kappa is not None and kappa >= KAPPA_BAR and items >= MIN_ITEMS",
        ")",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Inter-annotator agreement for the gold set (labels or events).")
    ap.add_argument("what", choices=("labels", "events"))
    ap.add_argument("a", help="annotator name under tools/gold/annotations/, or a path")
    ap.add_argument("b", help="second annotator")
    ap.add_argument("--packet", type=Path, default=PACKET, help="labels packet (to copy items into the adjudication file)")
    ap.add_argument("--out-dir", type=Path, default=ADJUDICATION)
    ap.add_argument("--write-reliability", action="store_true",
                    help=f"labels: rewrite {RELIABILITY_MODULE.relative_to(RELIABILITY_MODULE.parents[2])} from this agreement")
    args = ap.parse_args(argv)
    try:
        if args.what == "labels":
            stats = labels_report(args.a, args.b, packet_path=args.packet, out_dir=args.out_dir)
            if args.write_reliability:
                RELIABILITY_MODULE.write_text(reliability_module(stats, (args.a, args.b)), encoding="utf-8")
        else:
            events_report(args.a, args.b, out_dir=args.out_dir)
    except AnnotationError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
