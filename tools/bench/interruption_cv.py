"""Cross-validation of the interruption timing thresholds **inside the development half only**.

``python3 -m tools.bench.interruption_cv [k]`` scores the floor-taking interruption
detector (edge_agent/behaviours/events.py) on the development visits of the coaching
split for a grid of the two thresholds the rules use (``PATIENT_STOPS_S``: the patient's
turn ends within this long of the clinician's onset; ``SILENT_FLOOR_S``: the longest pause
after an open ending in which a clinician turn still takes the floor), then runs k-fold
cross-validation grouped by visit, 10 shuffles: each fold picks the thresholds with the
best F1 on the other folds (ties to the literature's ~1 s) and is scored on its own
visits. It never loads a held-out visit.
"""

from __future__ import annotations

import collections
import itertools
import random
import sys

from tools.bench.coaching import PR, gold_ids, load_gold, match_times, split

STOPS = (1.0, 1.5, 2.0, 2.5, 3.0)
SILENT = (0.5, 1.0, 1.5, 1.7, 2.0, 2.5)


def main(k: int = 4, reps: int = 10) -> int:
    from edge_agent.behaviours import events as E
    from edge_agent.behaviours.conversation import build_turns
    from tools.corpus.primock import load_consultation, utterances_from_consultation

    dev, held = split(gold_ids())
    assert not set(dev) & set(held)
    data = {c: (build_turns(utterances_from_consultation(load_consultation(c))), load_gold(c)) for c in dev}
    saved = E.PATIENT_STOPS_S, E.SILENT_FLOOR_S
    cache: dict[tuple[str, float, float], PR] = {}

    def score(cids: list[str], stops: float, silent: float) -> PR:
        pr = PR()
        for c in cids:
            if (c, stops, silent) not in cache:
                E.PATIENT_STOPS_S, E.SILENT_FLOOR_S = stops, silent
                turns, gold = data[c]
                cache[(c, stops, silent)] = match_times([o.time for o in E.detect_overlaps(turns) if o.kind == "interruption"],
                                                        [o["time"] for o in gold["overlaps"] if o["kind"] == "interruption"], 1.0)
            pr.add(cache[(c, stops, silent)])
        return pr

    try:
        print("development F1, rows PATIENT_STOPS_S, columns SILENT_FLOOR_S", " ".join(f"{s:>5}" for s in SILENT))
        for st in STOPS:
            print(f"  {st:>4}", " ".join(f"{score(dev, st, si).f1 or 0:.3f}" for si in SILENT))
        total, chosen = PR(), collections.Counter()
        for rep in range(reps):
            ids = dev[:]
            random.Random(rep).shuffle(ids)
            folds = [ids[i::k] for i in range(k)]
            for test in folds:
                train = [c for c in ids if c not in test]
                best = max(itertools.product(STOPS, SILENT),
                           key=lambda p: (score(train, *p).f1 or 0.0, -abs(p[0] - 1.0) - abs(p[1] - 1.0)))
                chosen[best] += 1
                total.add(score(test, *best))
        print(f"{k}-fold x {reps} grouped by visit: P {total.precision:.3f} R {total.recall:.3f} F1 {total.f1:.3f}; "
              f"chosen {chosen.most_common(3)}")
        fixed = score(dev, *saved)
        print(f"as shipped ({saved[0]}, {saved[1]}): P {fixed.precision:.3f} R {fixed.recall:.3f}")
    finally:
        E.PATIENT_STOPS_S, E.SILENT_FLOOR_S = saved
    return 0


if __name__ == "__main__":
    raise SystemExit(main(int(sys.argv[1]) if len(sys.argv) > 1 else 4))
