"""``edge-agent bench coaching``: are the report's events and observations true against the gold?

Against the adjudicated event gold (``tools/gold/gold/events/*.json``: 57 PriMock57 visits,
two blind annotators + adjudication, docs/gold-events.md) and the sentence-label gold
(``tools/gold/gold/labels_primock57.jsonl``, docs/labelling.md) it prints, for the
development half and the held-out half of the visits separately:

- event precision/recall: opening statement (end within 2 s of the gold and the
  redirected flag right), opening question (turn within 1 of the gold's and the notes-led flag right), floor-taking interruptions (matched one-to-one by clinician
  start within 1 s), monologues (> 60 s, matched by time overlap, IoU >= 0.5), and the
  utterance events (ICE, teach-back, safety-netting, agenda, stacked questions; by turn
  +-1) and visit flags (emergency escalation, plan said back);
- observation precision: the share of the observations the report emits that are true
  by their kind's truth condition (docs/coaching.md, "Truth conditions"), by kind;
- per-label F1 of the classifier as it is at run time on the label gold (in-domain),
  and of the function rules (edge_agent/behaviours/functions.py), beside the
  leave-one-source-out figures in docs/behaviours-eval.md when that file has them.

**Hold-out discipline.** The split is fixed and deterministic (sha256 of
``edge-agent/coaching-split/1:<consultation>``, lowest 28 = development). The rules were
built looking at the development half only; the held-out half is reported, never tuned on.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

REPO = Path(__file__).resolve().parents[2]
GOLD_EVENTS = REPO / "tools" / "gold" / "gold" / "events"
GOLD_LABELS = REPO / "tools" / "gold" / "gold" / "labels_primock57.jsonl"
EVAL_DOC = REPO / "docs" / "behaviours-eval.md"
SPLIT_SALT = "edge-agent/coaching-split/1:"
N_DEV = 28

TARGETS = {
    "observation_precision": 0.90,  # held-out
    "opening_correct": 0.90,  # statement end within 2 s and redirected flag right
    "interruption_precision": 0.85,
    "interruption_recall": 0.80,
}
OPENING_TOL_S = 2.0
INTERRUPTION_TOL_S = 1.0
MONOLOGUE_IOU = 0.5


def split(ids: list[str]) -> tuple[list[str], list[str]]:
    """(development, held-out): deterministic, independent of anything in the data."""
    ranked = sorted(ids, key=lambda c: hashlib.sha256((SPLIT_SALT + c).encode()).hexdigest())
    return sorted(ranked[:N_DEV]), sorted(ranked[N_DEV:])


def gold_ids() -> list[str]:
    return sorted(p.stem for p in GOLD_EVENTS.glob("*.json"))


def load_gold(cid: str) -> dict[str, Any]:
    return json.loads((GOLD_EVENTS / f"{cid}.json").read_text(encoding="utf-8"))


@dataclass
class PR:
    tp: int = 0
    fp: int = 0
    fn: int = 0

    @property
    def precision(self) -> float | None:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else None

    @property
    def recall(self) -> float | None:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else None

    @property
    def f1(self) -> float | None:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p and r else (0.0 if p is not None and r is not None else None)

    def add(self, other: "PR") -> None:
        self.tp += other.tp
        self.fp += other.fp
        self.fn += other.fn


def match_times(mine: list[float], gold: list[float], tol: float) -> PR:
    """One-to-one matching of event times within ``tol`` (greedy by distance)."""
    pairs = sorted((abs(a - b), i, j) for i, a in enumerate(mine) for j, b in enumerate(gold) if abs(a - b) <= tol)
    used_m: set[int] = set()
    used_g: set[int] = set()
    for _, i, j in pairs:
        if i not in used_m and j not in used_g:
            used_m.add(i)
            used_g.add(j)
    return PR(len(used_m), len(mine) - len(used_m), len(gold) - len(used_g))


def match_turns(mine: list[int], gold: list[int], tol: int = 1) -> PR:
    return match_times([float(x) for x in mine], [float(x) for x in gold], tol + 0.01)


def _iou(a: tuple[float, float], b: tuple[float, float]) -> float:
    inter = max(0.0, min(a[1], b[1]) - max(a[0], b[0]))
    union = max(a[1], b[1]) - min(a[0], b[0])
    return inter / union if union > 0 else 0.0


def match_spans(mine: list[tuple[float, float]], gold: list[tuple[float, float]]) -> PR:
    used: set[int] = set()
    tp = 0
    for a in mine:
        j = next((j for j, b in enumerate(gold) if j not in used and _iou(a, b) >= MONOLOGUE_IOU), None)
        if j is not None:
            used.add(j)
            tp += 1
    return PR(tp, len(mine) - tp, len(gold) - tp)


@dataclass
class EventScores:
    visits: int = 0
    opening_ok: int = 0
    opening_end_ok: int = 0
    redirected_ok: int = 0
    interruptions: PR = field(default_factory=PR)
    monologues: PR = field(default_factory=PR)
    utterances: dict[str, PR] = field(default_factory=lambda: defaultdict(PR))
    flags: dict[str, list[int]] = field(default_factory=lambda: defaultdict(lambda: [0, 0]))  # name -> [agree, n]
    opening_misses: list[str] = field(default_factory=list)
    opening_question_ok: int = 0  # turn within 1 of the gold's and the notes-led flag right


_UTTER_KEYS = ("ice_questions", "teach_back_requests", "safety_netting", "agenda_questions", "stacked_questions")


def score_events(cid: str, ev: Any, gold: dict[str, Any], s: EventScores) -> None:
    s.visits += 1
    g_os, m_os = gold["opening_statement"], ev.opening_statement
    if g_os is None or m_os is None:
        ok_end = ok_red = (g_os is None) == (m_os is None)
    else:
        ok_end = abs(g_os["end"] - m_os.end) <= OPENING_TOL_S
        ok_red = (g_os["outcome"] == "redirected") == (m_os.outcome == "redirected")
    s.opening_end_ok += ok_end
    s.redirected_ok += ok_red
    s.opening_ok += ok_end and ok_red
    if not (ok_end and ok_red):
        s.opening_misses.append(cid)
    g_oq, m_oq = gold.get("opening_question"), ev.opening_question
    s.opening_question_ok += (g_oq is None and m_oq is None) or (
        g_oq is not None and m_oq is not None and abs(int(g_oq["turn"]) - m_oq.turn) <= 1 and bool(g_oq.get("notes_led")) == m_oq.notes_led)
    g_int = [o["time"] for o in gold["overlaps"] if o["kind"] == "interruption"]
    s.interruptions.add(match_times([o.time for o in ev.interruptions], g_int, INTERRUPTION_TOL_S))
    s.monologues.add(match_spans([(m.start, m.end) for m in ev.monologues], [(m["start"], m["end"]) for m in gold["monologues"]]))
    mine = ev.to_gold()
    for key in _UTTER_KEYS:
        s.utterances[key].add(match_turns([u["turn"] for u in mine[key]], [u["turn"] for u in gold[key]]))
    for key in ("emergency_escalation", "plan_said_back"):
        s.flags[key][0] += bool(mine[key]["value"]) == bool(gold[key]["value"])
        s.flags[key][1] += 1


# ---- observations: truth against the gold ----------------------------------------------------


def observation_truth(obs: Any, gold: dict[str, Any], label_gold: dict[str, list[str]], cid: str) -> bool | None:
    """Is the observation true by its kind's truth condition (docs/coaching.md)? None: not checkable."""
    from edge_agent.feedback.observations import truth_condition

    return truth_condition(obs, gold, label_gold, cid)


# ---- labels --------------------------------------------------------------------------------


def load_label_gold() -> list[dict[str, Any]]:
    if not GOLD_LABELS.is_file():
        return []
    return [json.loads(line) for line in GOLD_LABELS.read_text(encoding="utf-8").splitlines() if line.strip()]


def label_gold_by_id(rows: list[dict[str, Any]]) -> dict[str, list[str]]:
    return {r["id"]: list(r["labels"]) for r in rows}


def label_f1(rows: list[dict[str, Any]], predicted: list[set[str]], labels: tuple[str, ...]) -> dict[str, PR]:
    out: dict[str, PR] = {}
    for lab in labels:
        pr = PR()
        for r, p in zip(rows, predicted):
            g = lab in r["labels"]
            m = lab in p
            pr.tp += g and m
            pr.fp += m and not g
            pr.fn += g and not m
        out[lab] = pr
    return out


def _loso_figures() -> dict[str, str]:
    """Per-label leave-one-source-out F1 from docs/behaviours-eval.md, if the other engineer's file has them."""
    if not EVAL_DOC.is_file():
        return {}
    text = EVAL_DOC.read_text(encoding="utf-8")
    m = re.search(r"(?im)^#+[^\n]*leave-one-source-out[^\n]*\n(.*?)(?=^#|\Z)", text, re.S)
    if not m:
        return {}
    out: dict[str, str] = {}
    for line in m.group(1).splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) >= 2 and re.fullmatch(r"[a-z_]+", cells[0] or "") and cells[0] != "label":
            f1 = next((c for c in reversed(cells[1:]) if re.fullmatch(r"[0-9.]+", c)), None)
            if f1 is not None:
                out[cells[0]] = f1
    return out


# ---- the bench -----------------------------------------------------------------------------


def _fmt(v: float | None) -> str:
    return "  n/a" if v is None else f"{v:.3f}"


def _label_contexts(cids: list[str]) -> dict[str, Any]:
    """Dialogue context of every clinician sentence of these visits, by label-gold id (``<visit>:tNNN:sNN``)."""
    from edge_agent.behaviours.conversation import build_turns, sentence_contexts
    from tools.corpus.primock import load_consultation, utterances_from_consultation

    out: dict[str, Any] = {}
    for cid in cids:
        for sid, c in sentence_contexts(build_turns(utterances_from_consultation(load_consultation(cid)))).items():
            out[f"{cid}:{sid}"] = c
    return out


def bench_coaching(out: IO[str] | None = None, classifier: Any = None, visits: list[str] | None = None) -> dict[str, Any]:
    from edge_agent.feedback.observations import WITHHELD, candidates
    from edge_agent.feedback.report import build_feedback
    from tools.corpus.primock import load_consultation, utterances_from_consultation

    ids = visits or gold_ids()
    dev, held = split(gold_ids())
    halves = {"development": [c for c in ids if c in dev], "held-out": [c for c in ids if c in held]}
    if classifier is None:
        from edge_agent.behaviours.classifier import BehaviourClassifier

        classifier = BehaviourClassifier(threads=2)
    label_rows = load_label_gold()
    label_gold = label_gold_by_id(label_rows)
    result: dict[str, Any] = {"split": {"development": halves["development"], "held-out": halves["held-out"]}}
    for half, cids in halves.items():
        ev_scores = EventScores()
        obs_by_kind: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])  # kind -> [true, emitted, not checkable]
        withheld_by_kind: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])  # the same for kinds the report withholds
        for cid in cids:
            gold = load_gold(cid)
            utts = utterances_from_consultation(load_consultation(cid))
            fb = build_feedback(utts, classifier)
            score_events(cid, fb.events, gold, ev_scores)
            withheld = [o for o in candidates(fb.events) if o.behaviour in WITHHELD]
            for o in [*fb.observations, *([fb.strength] if fb.strength else []), *withheld]:
                verdict = observation_truth(o, gold, label_gold, cid)
                row = (withheld_by_kind if o in withheld else obs_by_kind)[o.behaviour]
                row[1] += 1
                if verdict is None:
                    row[2] += 1
                else:
                    row[0] += bool(verdict)
        n_true = sum(r[0] for r in obs_by_kind.values())
        n_checked = sum(r[1] - r[2] for r in obs_by_kind.values())
        coaching_kinds = {k: r for k, r in obs_by_kind.items() if not k.startswith("strength")}
        c_true = sum(r[0] for r in coaching_kinds.values())
        c_checked = sum(r[1] - r[2] for r in coaching_kinds.values())
        result[half] = {
            "visits": ev_scores.visits,
            "opening_correct": ev_scores.opening_ok / max(1, ev_scores.visits),
            "opening_end_within_2s": ev_scores.opening_end_ok / max(1, ev_scores.visits),
            "redirected_flag_correct": ev_scores.redirected_ok / max(1, ev_scores.visits),
            "opening_misses": ev_scores.opening_misses,
            "opening_question_correct": ev_scores.opening_question_ok / max(1, ev_scores.visits),
            "interruption_precision": ev_scores.interruptions.precision,
            "interruption_recall": ev_scores.interruptions.recall,
            "interruption_counts": [ev_scores.interruptions.tp, ev_scores.interruptions.fp, ev_scores.interruptions.fn],
            "monologue_precision": ev_scores.monologues.precision,
            "monologue_recall": ev_scores.monologues.recall,
            "utterance_events": {k: {"precision": v.precision, "recall": v.recall, "tp_fp_fn": [v.tp, v.fp, v.fn]} for k, v in ev_scores.utterances.items()},
            "flags": {k: v[0] / max(1, v[1]) for k, v in ev_scores.flags.items()},
            "observation_precision": c_true / c_checked if c_checked else None,
            "observation_precision_with_strengths": n_true / n_checked if n_checked else None,
            "observations": {k: {"true": r[0], "emitted": r[1], "not_checkable": r[2]} for k, r in sorted(obs_by_kind.items())},
            "withheld_observations": {k: {"true": r[0], "would_emit": r[1], "not_checkable": r[2]} for k, r in sorted(withheld_by_kind.items())},
        }
        # labels on this half's consultations
        rows = [r for r in label_rows if r["id"].split(":")[0] in cids]
        if rows:
            texts = [r["text"] for r in rows]
            if getattr(classifier, "uses_context", False):  # each gold sentence in its visit's context, as the report labels it
                ctx = _label_contexts(cids)
                preds = [set(c.labels) for c in classifier.classify(texts, [ctx.get(r["id"]) for r in rows])]
            else:
                preds = [set(c.labels) for c in classifier.classify(texts)]
            from edge_agent.behaviours.labels import LABELS

            model_labels = tuple(getattr(classifier, "labels", None) or LABELS)
            result[half]["label_f1"] = {k: {"f1": v.f1, "precision": v.precision, "recall": v.recall, "support": v.tp + v.fn}
                                        for k, v in label_f1(rows, preds, model_labels).items()}
            from edge_agent.behaviours.functions import SentenceFunctions

            rules = SentenceFunctions(frozenset())
            rule_preds = [rules.rule_labels(r["text"]) for r in rows]
            result[half]["rule_f1"] = {k: {"f1": v.f1, "precision": v.precision, "recall": v.recall, "support": v.tp + v.fn}
                                       for k, v in label_f1(rows, rule_preds, ("ice_question", "teach_back", "safety_netting", "agenda_solicitation", "reassurance")).items()}
    result["loso"] = _loso_figures()
    result["targets"] = TARGETS
    if out is not None:
        _print(result, out)
    return result


def _print(r: dict[str, Any], out: IO[str]) -> None:
    w = out.write
    w("coaching bench: events and observations against the adjudicated gold (docs/gold-events.md)\n")
    w(f"  split: development {len(r['split']['development'])} visits (rules built on these), held-out "
      f"{len(r['split']['held-out'])} visits (reported only)\n\n")
    halves = [h for h in ("development", "held-out") if h in r and r[h]["visits"]]
    w(f"  {'':<44}" + "".join(f"{h:>14}" for h in halves) + "   target\n")

    def row(name: str, key: str, target: str = "", fmt=_fmt) -> None:  # type: ignore[no-untyped-def]
        w(f"  {name:<44}" + "".join(f"{fmt(r[h].get(key)):>14}" for h in halves) + f"   {target}\n")

    row("opening: end within 2 s and redirected right", "opening_correct", ">= 0.90 (held-out)")
    row("  end within 2 s", "opening_end_within_2s")
    row("  redirected flag right", "redirected_flag_correct")
    row("opening question: turn +-1, notes-led right", "opening_question_correct")
    row("floor-taking interruptions: precision", "interruption_precision", ">= 0.85 (held-out)")
    row("floor-taking interruptions: recall", "interruption_recall", ">= 0.80 (held-out)")
    w(f"  {'  tp / fp / fn':<44}" + "".join(f"{'/'.join(map(str, r[h]['interruption_counts'])):>14}" for h in halves) + "\n")
    row("monologues > 60 s: precision", "monologue_precision")
    row("monologues > 60 s: recall", "monologue_recall")
    for key in _UTTER_KEYS:
        for m in ("precision", "recall"):
            w(f"  {key.replace('_', ' ') + ': ' + m:<44}" + "".join(f"{_fmt(r[h]['utterance_events'][key][m]):>14}" for h in halves) + "\n")
    for key in ("emergency_escalation", "plan_said_back"):
        w(f"  {key.replace('_', ' ') + ': visits right':<44}" + "".join(f"{_fmt(r[h]['flags'][key]):>14}" for h in halves) + "\n")
    w("\n")
    row("observation precision (suggestions)", "observation_precision", ">= 0.90 (held-out)")
    row("observation precision (incl. strengths)", "observation_precision_with_strengths")
    kinds = sorted({k for h in halves for k in r[h]["observations"]})
    for k in kinds:
        cells = []
        for h in halves:
            o = r[h]["observations"].get(k)
            cells.append("-" if o is None else f"{o['true']}/{o['emitted'] - o['not_checkable']}" + (f" (+{o['not_checkable']}?)" if o["not_checkable"] else ""))
        w(f"  {'  ' + k:<44}" + "".join(f"{c:>14}" for c in cells) + "\n")
    for k in sorted({k for h in halves for k in r[h].get("withheld_observations", {})}):
        cells = []
        for h in halves:
            o = r[h]["withheld_observations"].get(k)
            cells.append("-" if o is None else f"{o['true']}/{o['would_emit'] - o['not_checkable']}")
        w(f"  {'  ' + k + ' (withheld, not in reports)':<44}" + "".join(f"{c:>14}" for c in cells) + "\n")
    w("  (true / checkable; '+n?' = emitted but not checkable against the gold)\n\n")
    if all("label_f1" in r[h] for h in halves):
        loso = r.get("loso") or {}
        w("  per-label F1 on the label gold (classifier as it is now, in-domain)" + ("; leave-one-source-out from docs/behaviours-eval.md" if loso else "") + "\n")
        labels = list(r[halves[0]]["label_f1"])
        for lab in labels:
            cells = [f"{_fmt(r[h]['label_f1'][lab]['f1'])} ({r[h]['label_f1'][lab]['support']})" for h in halves]
            w(f"  {'  ' + lab:<44}" + "".join(f"{c:>14}" for c in cells) + (f"   LOSO {loso[lab]}" if lab in loso else "") + "\n")
        w("  function rules (edge_agent/behaviours/functions.py) on the same items\n")
        for lab in r[halves[0]]["rule_f1"]:
            cells = [f"{_fmt(r[h]['rule_f1'][lab]['f1'])} ({r[h]['rule_f1'][lab]['support']})" for h in halves]
            w(f"  {'  ' + lab:<44}" + "".join(f"{c:>14}" for c in cells) + "\n")
