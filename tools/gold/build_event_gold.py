"""Build the adjudicated event gold (docs/gold-events.md; tools/gold/README.md).

    python -m tools.gold.build_event_gold [--check]

Reads the two blind annotations (``annotations/annotator-a/events`` and
``annotator-b/events``) and the adjudicator's decisions, and writes one file per
consultation to ``gold/events/<consultation>.json`` (valid against
``events.schema.json``, ``"annotator": "gold"``).

Two decision files:

- ``adjudication/events_final.jsonl`` — the rows of ``events_todo.jsonl`` (the
  disagreements ``agreement.py`` routes) with ``final``, ``adjudication_note`` and
  ``guide_gap``;
- ``adjudication/events_unrouted_final.jsonl`` — disagreements ``agreement.py``
  matches as the same event but does not route, because they differ only in an
  attribute or in a kind it does not score: the kind of an overlap both recorded
  when neither says ``interruption``, a non-interruption overlap only one recorded,
  a stacked question's ``kind``/``turns``, monologue lists whose time overlap is
  still >= 0.5 IoU, the start of an opening statement both end alike, and the turns
  of a ``plan_said_back`` both mark true. Same row format, ``"routed": false``.

How the gold is assembled (matching exactly as ``agreement.py`` does):

- opening question / statement: agreed -> annotator A's object (text fields are
  quotes of the same turn), with an unrouted decision where the two differ in
  anything but ``text``/``note``/the end tolerance;
- overlaps: matched one-to-one by clinician start time within 1 s; same kind ->
  agreed (A's entry); different kind or unmatched -> the decision's ``final``
  (an overlap object, or null = no event);
- monologues: identical lists -> agreed; otherwise the decision's list;
- ICE / teach-back / safety-net / agenda / stacked: entries matched by turn (+-1)
  are agreed (A's entry; a stacked entry's kind/turns from the unrouted decision
  where they differ); unmatched entries -> the decision's list (the entries kept);
- flags: same value -> agreed (A's object, or the unrouted decision where the
  plan-said-back turns differ); different value -> the decision's object.

Deterministic (sorted lists, no timestamps). It refuses to build when a
disagreement has no decision, when a decision matches no current disagreement
(the annotations changed after adjudication), or when a gold file fails the
schema. ``--check`` compares with the files on disk instead of writing them.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from tools.gold.agreement import (
    ADJUDICATION,
    ANNOTATIONS,
    ANNOTATORS,
    UTTERANCE_LISTS,
    AnnotationError,
    compare_events,
    interval_overlap,
    load_event_dir,
    match_times,
    match_turns,
    validate_event_file,
)

HERE = Path(__file__).resolve().parent
DECISIONS = ADJUDICATION / "events_final.jsonl"
UNROUTED = ADJUDICATION / "events_unrouted_final.jsonl"
GOLD_DIR = HERE / "gold" / "events"
SCHEMA_ID = "edge-agent/gold-events/1"
OVERLAP_KEYS = ("turn", "time", "patient_turn", "kind", "overlap", "note")


# --------------------------------------------------------------------------- disputes


def _key(row: dict) -> str:
    """Identity of a dispute: consultation, aspect and both annotators' versions."""
    a, b = ANNOTATORS
    return json.dumps([row["consultation"], row["aspect"], row[a], row[b]], sort_keys=True, ensure_ascii=False)


def routed_disputes(a: dict[str, dict], b: dict[str, dict]) -> list[dict]:
    """The rows agreement.py writes to events_todo.jsonl (same order)."""
    _, todo = compare_events(a, b, ANNOTATORS)
    return todo


def _os_differs(x: dict | None, y: dict | None) -> bool:
    if x is None or y is None:
        return False  # null vs object is routed by agreement.py
    keys = ("start_turn", "start", "end_turn", "redirect_turn", "overlap")
    return any(x.get(k) != y.get(k) for k in keys)


def unrouted_disputes(a: dict[str, dict], b: dict[str, dict]) -> list[dict]:
    """Disagreements agreement.py treats as the same event (or does not score)."""
    na, nb = ANNOTATORS
    rows: list[dict] = []

    def row(cid, aspect, va, vb):
        rows.append({"consultation": cid, "aspect": aspect, na: va, nb: vb, "final": None, "routed": False})

    for cid in sorted(set(a) & set(b)):
        x, y = a[cid], b[cid]
        sa, sb = x["opening_statement"], y["opening_statement"]
        routed_os = not ((sa is None and sb is None) or (sa and sb and abs(sa["end"] - sb["end"]) <= 2.0
                                                         and sa["outcome"] == sb["outcome"]))
        if not routed_os and _os_differs(sa, sb):
            row(cid, "opening_statement_detail", sa, sb)
        ox, oy = x["overlaps"], y["overlaps"]
        m = match_times([o["time"] for o in ox], [o["time"] for o in oy], 1.0)
        for i, j in m:
            if ox[i]["kind"] != oy[j]["kind"] and "interruption" not in (ox[i]["kind"], oy[j]["kind"]):
                row(cid, "overlap_kind", ox[i], oy[j])
        mi, mj = {i for i, _ in m}, {j for _, j in m}
        for i, o in enumerate(ox):
            if i not in mi and o["kind"] != "interruption":
                row(cid, "overlap_unmatched", o, None)
        for j, o in enumerate(oy):
            if j not in mj and o["kind"] != "interruption":
                row(cid, "overlap_unmatched", None, o)
        ivs_a = [(mo["start"], mo["end"]) for mo in x["monologues"]]
        ivs_b = [(mo["start"], mo["end"]) for mo in y["monologues"]]
        inter, union = interval_overlap(ivs_a, ivs_b)
        routed_mono = bool(union and inter / union < 0.5)
        if not routed_mono and x["monologues"] != y["monologues"]:
            row(cid, "monologues_detail", x["monologues"], y["monologues"])
        la, lb = x["stacked_questions"], y["stacked_questions"]
        for i, j in match_turns([e["turn"] for e in la], [e["turn"] for e in lb]):
            ea, eb = la[i], lb[j]
            if ea["kind"] != eb["kind"] or ea["turns"] != eb["turns"] or ea["turn"] != eb["turn"]:
                row(cid, "stacked_detail", ea, eb)
        for key in ("plan_said_back", "emergency_escalation"):
            fa, fb = x[key], y[key]
            if bool(fa["value"]) == bool(fb["value"]):
                fields = ("turns", "time", "prompted_by_teach_back") if key == "plan_said_back" else ("turn", "time")
                if any(fa.get(k) != fb.get(k) for k in fields):
                    row(cid, f"{key}_detail", fa, fb)
    return rows


def load_decisions(path: Path) -> dict[str, dict]:
    out: dict[str, dict] = {}
    if not path.is_file():
        return out
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        r = json.loads(line)
        if "final" not in r or not str(r.get("adjudication_note") or "").strip():
            raise AnnotationError(f"{path}:{n}: needs 'final' and an 'adjudication_note'")
        k = _key(r)
        if k in out:
            raise AnnotationError(f"{path}:{n}: duplicate decision for {r['consultation']} {r['aspect']}")
        out[k] = r
    return out


def _attach(disputes: list[dict], decisions: dict[str, dict], where: Path) -> list[dict]:
    """Each dispute with its decision; refuses missing and stray decisions."""
    out, used = [], set()
    for d in disputes:
        k = _key(d)
        if k not in decisions:
            raise AnnotationError(f"{where.name}: no decision for {d['consultation']} {d['aspect']}")
        used.add(k)
        out.append(decisions[k])
    stray = [decisions[k] for k in decisions if k not in used]
    if stray:
        s = stray[0]
        raise AnnotationError(f"{where.name}: decision for {s['consultation']} {s['aspect']} matches no current "
                              f"disagreement (annotations changed after adjudication?)")
    return out


# --------------------------------------------------------------------------- gold


def _overlap(o: dict, note: str | None = None) -> dict:
    out = {k: o[k] for k in ("turn", "time", "patient_turn", "kind", "overlap")}
    out["note"] = o.get("note", "") if note is None else note
    return out


def _ident(o: dict) -> tuple:
    return (o["turn"], round(float(o["time"]), 2))


def build_visit(cid: str, x: dict, y: dict, routed: list[dict], unrouted: list[dict]) -> dict:
    na, nb = ANNOTATORS
    by_aspect: dict[str, list[dict]] = {}
    for r in routed + unrouted:
        by_aspect.setdefault(r["aspect"], []).append(r)
    adjudicated: list[str] = []

    def one(aspect: str) -> dict | None:
        rows = by_aspect.get(aspect, [])
        if len(rows) > 1:
            raise AnnotationError(f"{cid}: {len(rows)} decisions for {aspect}")
        return rows[0] if rows else None

    # opening question: agreement.py found no 2-s disagreement in any visit; a routed row would decide
    r = one("opening_question")
    opening_question = r["final"] if r else x["opening_question"]
    r = one("opening_statement") or one("opening_statement_detail")
    opening_statement = r["final"] if r else x["opening_statement"]
    if r:
        adjudicated.append("opening statement")

    # overlaps
    decided: dict[tuple, dict | None] = {}
    for aspect in ("interruption", "overlap_kind", "overlap_unmatched"):
        for r in by_aspect.get(aspect, []):
            src = r[na] or r[nb]
            decided[_ident(src)] = r["final"]
    ox, oy = x["overlaps"], y["overlaps"]
    m = match_times([o["time"] for o in ox], [o["time"] for o in oy], 1.0)
    overlaps: list[dict] = []
    n_adj = 0

    def take(o_a: dict | None, o_b: dict | None):
        nonlocal n_adj
        for o in (o_a, o_b):
            if o is not None and _ident(o) in decided:
                fin = decided[_ident(o)]
                n_adj += 1
                if fin is not None:
                    overlaps.append(_overlap(fin))
                return
        raise AnnotationError(f"{cid}: overlap at {(o_a or o_b)['time']} disputed but not decided")

    for i, j in m:
        if ox[i]["kind"] == oy[j]["kind"]:
            overlaps.append(_overlap(ox[i], note=""))
        else:
            take(ox[i], oy[j])
    mi, mj = {i for i, _ in m}, {j for _, j in m}
    for i, o in enumerate(ox):
        if i not in mi:
            take(o, None)
    for j, o in enumerate(oy):
        if j not in mj:
            take(None, o)
    overlaps.sort(key=lambda o: (o["time"], o["turn"]))
    if len({_ident(o) for o in overlaps}) != len(overlaps):
        raise AnnotationError(f"{cid}: the same clinician turn appears twice in overlaps")
    if n_adj:
        adjudicated.append(f"{n_adj} overlap(s)")

    # monologues
    r = one("monologues") or one("monologues_detail")
    monologues = r["final"] if r else x["monologues"]
    if r:
        adjudicated.append("monologues")
    monologues = sorted(monologues, key=lambda mo: mo["start"])

    # utterance lists
    lists: dict[str, list[dict]] = {}
    stacked_fix = {}
    for r in by_aspect.get("stacked_detail", []):
        stacked_fix[r[na]["turn"]] = r["final"]
    for key in UTTERANCE_LISTS:
        la, lb = x[key], y[key]
        m = match_turns([e["turn"] for e in la], [e["turn"] for e in lb])
        kept = []
        for i, _ in m:
            e = la[i]
            if key == "stacked_questions" and e["turn"] in stacked_fix:
                e = stacked_fix[e["turn"]]
            kept.append(e)
        r = one(key)
        if len(m) != len(la) or len(m) != len(lb):
            if r is None:
                raise AnnotationError(f"{cid}: {key} disputed but not decided")
            kept += r["final"]
            adjudicated.append(key.replace("_", " "))
        elif r is not None:
            raise AnnotationError(f"{cid}: decision for {key} but the annotators agree")
        lists[key] = sorted(kept, key=lambda e: (e["turn"], e["time"]))
    if stacked_fix:
        adjudicated.append(f"{len(stacked_fix)} stacked kind(s)")

    flags = {}
    for key in ("emergency_escalation", "plan_said_back"):
        r = one(key) or one(f"{key}_detail")
        flags[key] = r["final"] if r else x[key]
        if r:
            adjudicated.append(key.replace("_", " "))

    notes = "Adjudicated gold (tools/gold/build_event_gold.py): events the two blind annotators agree on"
    notes += "; decided by the adjudicator: " + ", ".join(adjudicated) + "." if adjudicated else "; nothing disputed."
    return {
        "schema": SCHEMA_ID,
        "consultation": cid,
        "annotator": "gold",
        "opening_question": opening_question,
        "opening_statement": opening_statement,
        "overlaps": overlaps,
        "monologues": monologues,
        "ice_questions": lists["ice_questions"],
        "teach_back_requests": lists["teach_back_requests"],
        "safety_netting": lists["safety_netting"],
        "agenda_questions": lists["agenda_questions"],
        "stacked_questions": lists["stacked_questions"],
        "emergency_escalation": flags["emergency_escalation"],
        "plan_said_back": flags["plan_said_back"],
        "notes": notes,
    }


def build(a: dict[str, dict], b: dict[str, dict], decisions: dict[str, dict],
          unrouted_decisions: dict[str, dict]) -> dict[str, dict]:
    if set(a) != set(b):
        raise AnnotationError(f"the annotators coded different visits: {sorted(set(a) ^ set(b))[:3]}")
    routed = _attach(routed_disputes(a, b), decisions, DECISIONS)
    unrouted = _attach(unrouted_disputes(a, b), unrouted_decisions, UNROUTED)
    out = {}
    for cid in sorted(a):
        doc = build_visit(cid, a[cid], b[cid], [r for r in routed if r["consultation"] == cid],
                          [r for r in unrouted if r["consultation"] == cid])
        validate_event_file(doc, f"gold {cid}")
        out[cid] = doc
    return out


def render(doc: dict) -> str:
    return json.dumps(doc, ensure_ascii=False, indent=1) + "\n"


def load_annotations() -> tuple[dict[str, dict], dict[str, dict]]:
    return tuple(load_event_dir(ANNOTATIONS / n / "events") for n in ANNOTATORS)  # type: ignore[return-value]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="compare with the gold files on disk, do not write")
    ap.add_argument("--out-dir", type=Path, default=GOLD_DIR)
    args = ap.parse_args(argv)
    try:
        a, b = load_annotations()
        gold = build(a, b, load_decisions(DECISIONS), load_decisions(UNROUTED))
    except AnnotationError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.check:
        bad = [cid for cid, doc in gold.items()
               if not (args.out_dir / f"{cid}.json").is_file()
               or (args.out_dir / f"{cid}.json").read_text(encoding="utf-8") != render(doc)]
        extra = sorted(p.stem for p in args.out_dir.glob("*.json") if p.stem not in gold) if args.out_dir.is_dir() else []
        ok = not bad and not extra
        print(f"{args.out_dir}: {'up to date' if ok else 'DIFFERS from a rebuild'} ({len(gold)} visits"
              + (f"; differ: {bad[:5]}" if bad else "") + (f"; stray: {extra[:5]}" if extra else "") + ")")
        return 0 if ok else 1
    args.out_dir.mkdir(parents=True, exist_ok=True)
    for cid, doc in gold.items():
        (args.out_dir / f"{cid}.json").write_text(render(doc), encoding="utf-8")
    print(f"{args.out_dir}: {len(gold)} visits written")
    return 0


if __name__ == "__main__":
    sys.exit(main())
