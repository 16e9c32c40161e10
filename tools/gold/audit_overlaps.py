"""Audit of the interruption gold: how far a human gets, and where the gold departs from its own letter.

``python3 -m tools.gold.audit_overlaps`` prints, per half of the coaching split
(tools/bench/coaching.py ``split``):

1. **Human ceiling.** Each blind annotator's interruptions and opening statements
   scored against the adjudicated gold exactly as the bench scores the detector
   (one-to-one by clinician start within 1 s; statement end within 2 s and the
   redirected flag), and which annotator(s) each gold interruption came from.
2. **Open endings coded as not an interruption.** Substantive clinician turns over a
   patient content turn whose last word the protocol lists as holding the floor
   (docs/gold-events.md §1 and adjudication gap 2: and, but, or, like, because, the,
   a, I, so + pronoun, and the prepositions of the worked examples), the patient
   stopping within 2 s: the share the gold codes ``interruption`` and every exception,
   so a reader can judge which are ellipsis ("don't really want to.") and which
   depart from the letter ("what's going on with .").

It reads gold and transcripts only; it runs no detector and changes nothing.
"""

from __future__ import annotations

import collections
import json
import sys
from typing import IO

from tools.bench.coaching import PR, REPO, gold_ids, load_gold, match_times, split

ANNOTATIONS = REPO / "tools" / "gold" / "annotations"
ANNOTATORS = ("annotator-a", "annotator-b")
PROTOCOL_OPEN = frozenset({"and", "but", "or", "like", "because", "cause", "'cause", "the", "a", "an", "i", "my", "of", "to", "with"})


def _annotation(annotator: str, cid: str) -> dict | None:
    f = ANNOTATIONS / annotator / "events" / f"{cid}.json"
    return json.loads(f.read_text(encoding="utf-8")) if f.is_file() else None


def _interruption_times(doc: dict) -> list[float]:
    return [o["time"] for o in doc["overlaps"] if o["kind"] == "interruption"]


def _opening_ok(mine: dict | None, gold: dict | None) -> bool:
    if mine is None or gold is None:
        return (mine is None) == (gold is None)
    return abs(mine["end"] - gold["end"]) <= 2.0 and (mine["outcome"] == "redirected") == (gold["outcome"] == "redirected")


def human_ceiling(ids: list[str]) -> dict[str, dict[str, object]]:
    out: dict[str, dict[str, object]] = {}
    for ann in ANNOTATORS:
        pr, ok, n = PR(), 0, 0
        for cid in ids:
            doc = _annotation(ann, cid)
            if doc is None:
                continue
            gold = load_gold(cid)
            n += 1
            pr.add(match_times(_interruption_times(doc), _interruption_times(gold), 1.0))
            ok += _opening_ok(doc["opening_statement"], gold["opening_statement"])
        out[ann] = {"visits": n, "precision": pr.precision, "recall": pr.recall, "tp_fp_fn": (pr.tp, pr.fp, pr.fn), "opening_ok": ok}
    source: collections.Counter[str] = collections.Counter()
    for cid in ids:
        docs = {ann: _annotation(ann, cid) for ann in ANNOTATORS}
        for t in _interruption_times(load_gold(cid)):
            by = [ann[-1] for ann, d in docs.items() if d is not None and any(abs(t - x) <= 1.0 for x in _interruption_times(d))]
            source["+".join(by) or "adjudication only"] += 1
    out["gold_interruptions_listed_by"] = dict(source)
    return out


def open_endings(ids: list[str]) -> tuple[collections.Counter[str], list[tuple[str, int, str, str]]]:
    from edge_agent.behaviours.conversation import build_turns, tokens
    from tools.corpus.primock import load_consultation, utterances_from_consultation

    kinds: collections.Counter[str] = collections.Counter()
    exceptions = []
    for cid in ids:
        gold = load_gold(cid)
        turns = build_turns(utterances_from_consultation(load_consultation(cid)))
        for o in gold["overlaps"]:
            c, p = turns[o["turn"]], turns[o["patient_turn"]]
            ws = tokens(p.text)
            if not ws or c.act != "substantive" or p.act != "content" or not -2.0 <= p.t1 - c.t0 <= 2.0:
                continue
            prev = ws[-2] if len(ws) > 1 else ""
            if ws[-1] in PROTOCOL_OPEN or (prev == "so" and ws[-1] in ("i", "we", "it")):
                kinds[o["kind"]] += 1
                if o["kind"] != "interruption":
                    exceptions.append((cid, o["turn"], o["kind"], " ".join(p.text.split()[-6:])))
    return kinds, exceptions


def main(out: IO[str] = sys.stdout) -> int:
    dev, held = split(gold_ids())
    for half, ids in (("development", dev), ("held-out", held)):
        print(f"== {half} ({len(ids)} visits)", file=out)
        hc = human_ceiling(ids)
        for ann in ANNOTATORS:
            r = hc[ann]
            p, rc = r["precision"], r["recall"]
            print(f"  {ann} vs adjudicated gold: interruptions P {p:.3f} R {rc:.3f} (tp/fp/fn {'/'.join(map(str, r['tp_fp_fn']))}); "
                  f"opening right {r['opening_ok']}/{r['visits']}", file=out)
        print(f"  gold interruptions listed by: {hc['gold_interruptions_listed_by']}", file=out)
        kinds, exc = open_endings(ids)
        n = sum(kinds.values())
        share = kinds["interruption"] / n if n else 0.0
        print(f"  substantive turns over a protocol-open last word, patient stops within 2 s: {n}, "
              f"coded interruption {kinds['interruption']} ({share:.2f}); others:", file=out)
        for cid, turn, kind, tail in exc:
            print(f"    {cid} t{turn:03d} {kind}: …{tail}", file=out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
