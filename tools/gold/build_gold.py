"""Build the adjudicated gold sentence labels (docs/labelling.md; tools/gold/README.md).

    python -m tools.gold.build_gold [--check]

Reads the packet (``packets/labels_primock57.jsonl``), the two blind annotations
(``annotations/annotator-a`` and ``annotator-b``) and the adjudicator's decisions
(``adjudication/labels_final.jsonl``) and writes ``gold/labels_primock57.jsonl``: one
line per packet item, in packet order,

    {"id", "text", "labels", "source": "agreed" | "adjudicated"}

- items whose two label sets are equal take those labels (``"agreed"``);
- items whose label sets differ take the adjudicator's ``final`` (``"adjudicated"``).

Deterministic (labels in docs/labelling.md §2 order, no timestamps). It refuses to build
when a disputed item has no decision, when a decision exists for an item the annotators
agreed on, when a decision was taken on other labels than the ones stored with it, or
when a final label set breaks the guide's co-occurrence rules (§6). ``--check``
compares the result with the file on disk instead of writing it.
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
    LABELS,
    PACKET,
    AnnotationError,
    load_label_file,
    rule_warnings,
)

HERE = Path(__file__).resolve().parent
DECISIONS = ADJUDICATION / "labels_final.jsonl"
GOLD = HERE / "gold" / "labels_primock57.jsonl"


def _ordered(labels) -> list[str]:
    return [x for x in LABELS if x in set(labels)]


def load_packet(path: Path = PACKET) -> list[dict]:
    return [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines() if x.strip()]


def load_decisions(path: Path = DECISIONS) -> dict[str, dict]:
    out: dict[str, dict] = {}
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        row = json.loads(line)
        if row["id"] in out:
            raise AnnotationError(f"{path}:{n}: duplicate decision for {row['id']}")
        final = row.get("final")
        if not isinstance(final, list):
            raise AnnotationError(f"{path}:{n}: {row['id']} has no final label list")
        bad = [x for x in final if x not in LABELS]
        if bad:
            raise AnnotationError(f"{path}:{n}: unknown label(s) {bad}")
        out[row["id"]] = row
    return out


def build(packet: list[dict], a: dict[str, dict], b: dict[str, dict], decisions: dict[str, dict]) -> list[dict]:
    """Gold rows in packet order; raises AnnotationError on any inconsistency."""
    ids = [it["id"] for it in packet]
    if len(set(ids)) != len(ids):
        raise AnnotationError("packet has duplicate ids")
    for name, ann in zip(ANNOTATORS, (a, b)):
        missing = [i for i in ids if i not in ann]
        if missing:
            raise AnnotationError(f"{name}: {len(missing)} packet items missing (first {missing[0]})")
    extra = sorted(set(decisions) - set(ids))
    if extra:
        raise AnnotationError(f"decisions for ids not in the packet: {extra[:3]}")
    rows, final_sets = [], {}
    for it in packet:
        i = it["id"]
        la, lb = a[i]["labels"], b[i]["labels"]
        if la == lb:
            if i in decisions:
                raise AnnotationError(f"{i}: annotators agree but a decision was recorded")
            labels, source = _ordered(la), "agreed"
        else:
            if i not in decisions:
                raise AnnotationError(f"{i}: annotators disagree and there is no decision")
            dec = decisions[i]
            if set(dec.get("differs", [])) != la ^ lb or set(dec.get("agreed", [])) != la & lb:
                raise AnnotationError(f"{i}: decision was taken on different annotations (differs/agreed changed)")
            labels, source = _ordered(dec["final"]), "adjudicated"
            final_sets[i] = {"labels": set(labels), "note": ""}
        rows.append({"id": i, "text": it["text"], "labels": labels, "source": source})
    warns = rule_warnings(final_sets)
    if warns:
        raise AnnotationError("final labels break docs/labelling.md §6: " + "; ".join(warns))
    return rows


def render(rows: list[dict]) -> str:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="compare with the gold file on disk, do not write")
    ap.add_argument("--out", type=Path, default=GOLD)
    args = ap.parse_args(argv)
    a, b = (load_label_file(ANNOTATIONS / n / "labels_primock57.jsonl") for n in ANNOTATORS)
    rows = build(load_packet(), a, b, load_decisions())
    text = render(rows)
    n_adj = sum(r["source"] == "adjudicated" for r in rows)
    if args.check:
        same = args.out.is_file() and args.out.read_text(encoding="utf-8") == text
        print(f"{args.out}: {'up to date' if same else 'DIFFERS from a rebuild'} ({len(rows)} items, {n_adj} adjudicated)")
        return 0 if same else 1
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text, encoding="utf-8")
    print(f"{args.out}: {len(rows)} items ({len(rows) - n_adj} agreed, {n_adj} adjudicated)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
