"""Leave-one-visit-out cross-validation of the interruption detector **inside the development half only**.

``python3 -m tools.bench.interruption_cv`` scores the floor-taking interruption detector
(edge_agent/behaviours/floor.py, used by events.detect_overlaps) on the development visits of
the coaching split for every value of its three numbers (``level``: how many of the nested
incomplete-ending word classes count; ``stop_s``: the patient's turn ends within this long
of the clinician's onset; ``silent_s``: the longest pause after an incomplete ending in which
a clinician turn still takes the floor), then leaves each development visit out in turn:
the numbers with the best F1 on the other 27 visits (ties: the fewest word classes, then the
values nearest the protocol's "about one second") are scored on the visit left out. The
pooled counts over the 28 left-out visits are the honest in-domain estimate. It never loads
a held-out visit; ``--ceiling`` adds the annotator-vs-annotator figures on both halves
(annotation files only, no transcript).
"""

from __future__ import annotations

import collections
import itertools
import sys
from typing import Any

from tools.bench.coaching import INTERRUPTION_TOL_S, PR, gold_ids, load_gold, match_times, split

LEVELS = (1, 2, 3)
STOPS = (1.0, 1.5, 2.0, 2.5, 3.0)
SILENT = (0.0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0)
_ACK = frozenset({"ok", "okay", "k", "right", "yeah", "yes", "alright", "sure", "fine"})


def _interruptions(doc: dict[str, Any]) -> list[float]:
    return [o["time"] for o in doc["overlaps"] if o["kind"] == "interruption"]


def loo(data: dict[str, tuple[Any, dict[str, Any]]]) -> tuple[PR, collections.Counter[tuple[int, float, float]], dict[tuple[int, float, float], PR]]:
    """(pooled left-out counts, chosen parameters, full-development counts per parameter set)."""
    from edge_agent.behaviours.events import detect_overlaps
    from edge_agent.behaviours.floor import FloorParams

    grid = list(itertools.product(LEVELS, STOPS, SILENT))
    per: dict[tuple[str, tuple[int, float, float]], PR] = {}
    for c, (turns, gold) in data.items():
        for g in grid:
            mine = [o.time for o in detect_overlaps(turns, FloorParams(*g)) if o.kind == "interruption"]
            per[(c, g)] = match_times(mine, _interruptions(gold), INTERRUPTION_TOL_S)

    def score(cids: list[str], g: tuple[int, float, float]) -> PR:
        pr = PR()
        for c in cids:
            pr.add(per[(c, g)])
        return pr

    ids = sorted(data)
    total, chosen = PR(), collections.Counter[tuple[int, float, float]]()
    LEFT_OUT.clear()
    for left in ids:
        train = [c for c in ids if c != left]
        best = max(grid, key=lambda g: (score(train, g).f1 or 0.0, -g[0], -abs(g[1] - 1.0) - abs(g[2] - 1.0)))
        chosen[best] += 1
        total.add(per[(left, best)])
        LEFT_OUT.append(per[(left, best)])
    return total, chosen, {g: score(ids, g) for g in grid}


LEFT_OUT: list[PR] = []  # the last loo()'s per-visit left-out counts, for the interval below


def visit_interval(per_visit: list[PR], reps: int = 2000, seed: int = 0) -> tuple[tuple[float, float], tuple[float, float]]:
    """90 % bootstrap intervals of pooled precision and recall, resampling visits (events in a visit are not independent)."""
    import random

    rng = random.Random(seed)
    ps, rs = [], []
    for _ in range(reps):
        pr = PR()
        for _ in per_visit:
            pr.add(rng.choice(per_visit))
        if pr.precision is not None:
            ps.append(pr.precision)
        if pr.recall is not None:
            rs.append(pr.recall)
    ps.sort()
    rs.sort()

    def q(xs: list[float], f: float) -> float:
        return xs[min(len(xs) - 1, int(f * len(xs)))]

    return (q(ps, 0.05), q(ps, 0.95)), (q(rs, 0.05), q(rs, 0.95))


def ceiling(cids: list[str]) -> dict[str, PR]:
    """Each annotator scored against the adjudicated gold, and annotator b against a, as the bench scores the detector."""
    from tools.gold.agreement import ANNOTATIONS

    out = {"a vs gold": PR(), "b vs gold": PR(), "b vs a": PR()}
    for c in cids:
        docs = {}
        for who in ("a", "b"):
            import json

            path = ANNOTATIONS / f"annotator-{who}" / "events" / f"{c}.json"
            docs[who] = json.loads(path.read_text(encoding="utf-8")) if path.exists() else None
        gold = _interruptions(load_gold(c))
        if docs["a"] is None or docs["b"] is None:
            continue
        a, b = _interruptions(docs["a"]), _interruptions(docs["b"])
        out["a vs gold"].add(match_times(a, gold, INTERRUPTION_TOL_S))
        out["b vs gold"].add(match_times(b, gold, INTERRUPTION_TOL_S))
        out["b vs a"].add(match_times(b, a, INTERRUPTION_TOL_S))
    return out


def _category(turns: Any, c: Any, silent_s: float) -> tuple[str, str, str, str, str] | None:
    """(clinician content, overlap length, patient ending, patient continues?, how the clinician turn opens)."""
    from edge_agent.behaviours.conversation import WINDOW, overlapping_patient_turn, tokens
    from edge_agent.behaviours.floor import ending_class

    p = overlapping_patient_turn(list(turns), c)
    if p is None:
        p = next((t for t in reversed(turns[max(0, c.index - WINDOW) : c.index]) if t.patient), None)
        if p is None or not 0.0 <= c.t0 - p.t1 <= silent_s:
            return None
    if c.act in ("backchannel", "empathy", "continuer", "social", "fragment"):
        content = "back-channel/empathy"
    elif c.act in ("repair", "admin"):
        content = c.act
    else:
        content = "question" if any(s.question for s in c.sentences) else "statement"
    went_on = p.t1 - c.t0
    length = ("silent" if went_on < 0 else "0-0.5 s" if went_on < 0.5 else "0.5-1 s" if went_on < 1 else
              "1-2 s" if went_on < 2 else "> 2 s")
    ending = "incomplete" if ending_class(p.text) else "complete"
    nxt = next((t for t in turns[c.index + 1 :] if t.patient and t.t0 > c.t0), None)
    goes_on = went_on > 2.0 or (nxt is not None and nxt.act == "content" and nxt.t0 < c.t1)
    first = tokens(c.text)[:1]
    opens = "acknowledgement token" if first and first[0] in _ACK else "other"  # gold gap 1: "OK. And …" over the patient
    return content, length, ending, "patient goes on" if goes_on else "patient yields", opens


def table(data: dict[str, tuple[Any, dict[str, Any]]]) -> None:
    """Gold kinds and each annotator's interruptions by category, and the detectors' errors by category."""
    from edge_agent.behaviours.events import FLOOR, _classify, detect_overlaps

    rows: dict[tuple[int, str], collections.Counter[str]] = collections.defaultdict(collections.Counter)
    names = ("clinician turn", "patient still talking after onset", "patient's words", "then", "clinician turn opens with")
    for c, (turns, gold) in data.items():
        kinds = {o["turn"]: o["kind"] for o in gold["overlaps"]}
        ann = {}
        for who in ("a", "b"):
            import json

            from tools.gold.agreement import ANNOTATIONS

            path = ANNOTATIONS / f"annotator-{who}" / "events" / f"{c}.json"
            doc = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {"overlaps": []}
            ann[who] = {o["turn"] for o in doc["overlaps"] if o["kind"] == "interruption"}
        new = {o.turn for o in detect_overlaps(turns, FLOOR) if o.kind == "interruption"}
        for t in turns:
            if not t.clinician:
                continue
            cat = _category(turns, t, 2.0)
            if cat is None:
                continue
            old = _classify(turns, t)[0] == "interruption"
            g = kinds.get(t.index) == "interruption"
            for i, v in enumerate(cat):
                k = rows[(i, v)]
                k["n"] += 1
                k["gold"] += g
                k["a"] += t.index in ann["a"]
                k["b"] += t.index in ann["b"]
                k["old fp"] += old and not g
                k["old fn"] += g and not old
                k["new fp"] += t.index in new and not g
                k["new fn"] += g and t.index not in new
    cols = ("n", "gold", "a", "b", "old fp", "old fn", "new fp", "new fn")
    print(f"  {'category':<44}" + "".join(f"{h:>8}" for h in cols))
    for (i, v), k in sorted(rows.items()):
        print(f"  {names[i] + ': ' + v:<44}" + "".join(f"{k[h]:>8}" for h in cols))


def _line(name: str, pr: PR) -> str:
    f = lambda v: "  n/a" if v is None else f"{v:.3f}"  # noqa: E731
    return f"  {name:<36} P {f(pr.precision)}  R {f(pr.recall)}  F1 {f(pr.f1)}  (tp/fp/fn {pr.tp}/{pr.fp}/{pr.fn})"


def main(argv: list[str]) -> int:
    from edge_agent.behaviours.conversation import build_turns
    from edge_agent.behaviours.events import FLOOR
    from tools.corpus.primock import load_consultation, utterances_from_consultation

    dev, held = split(gold_ids())
    assert not set(dev) & set(held)
    data = {c: (build_turns(utterances_from_consultation(load_consultation(c))), load_gold(c)) for c in dev}
    total, chosen, full = loo(data)
    print(f"development half, {len(dev)} visits, {sum(len(_interruptions(g)) for _, g in data.values())} gold interruptions")
    print("  F1 on all development visits, level x stop_s (best silent_s):")
    for lv in LEVELS:
        cells = []
        for st in STOPS:
            best = max(SILENT, key=lambda si: full[(lv, st, si)].f1 or 0.0)
            cells.append(f"{st:>4}:{full[(lv, st, best)].f1 or 0:.3f}@{best}")
        print(f"    level {lv}  " + "  ".join(cells))
    print(_line("leave-one-visit-out (pooled)", total))
    (p_lo, p_hi), (r_lo, r_hi) = visit_interval(LEFT_OUT)
    print(f"  90 % interval, visits resampled: P {p_lo:.2f}-{p_hi:.2f}  R {r_lo:.2f}-{r_hi:.2f}")
    print(f"  chosen (level, stop_s, silent_s): {chosen.most_common(4)}")
    fixed = (FLOOR.level, FLOOR.stop_s, FLOOR.silent_s)
    print(_line(f"as shipped {fixed}, all dev visits", full[fixed]))
    if "--table" in argv:
        print("development candidates by category (clinician turns starting in a patient turn or <= 2 s after one):")
        table(data)
    if "--ceiling" in argv:
        for name, cids in (("development", dev), ("held-out", held)):
            print(f"annotators, {name} half (interruptions matched within {INTERRUPTION_TOL_S} s):")
            for k, pr in ceiling(cids).items():
                print(_line(k, pr))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
