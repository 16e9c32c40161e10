"""Build primock57.jsonl: PriMock57 doctor sentences with reviewed labels.

    python -m tools.training.behaviour_dataset

Steps: split each doctor turn into sentences, drop pure fillers, pre-annotate
with the rules in preannotate.py, then apply the annotator's reviewed
corrections from corrections.tsv (id <TAB> final labels, comma separated;
"-" means no label). Rows whose labels came from a correction carry
provenance "reviewed-corrected", the rest "rules, reviewed".
"""

from __future__ import annotations

import json
from pathlib import Path

from edge_agent.behaviours.jargon import JargonDetector
from edge_agent.behaviours.labels import LABELS
from edge_agent.behaviours.text import is_filler, split_sentences
from edge_agent.models import models_dir
from tools.corpus.primock import iter_consultations
from tools.training.preannotate import preannotate

HERE = Path(__file__).resolve().parent / "data" / "behaviours"


def load_corrections(path: Path) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    if not path.is_file():
        return out
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        sid, _, rest = line.partition("\t")
        labels_txt = rest.split("\t")[0].strip()
        labels = [] if labels_txt == "-" else [x.strip() for x in labels_txt.split(",") if x.strip()]
        bad = [x for x in labels if x not in LABELS]
        if bad:
            raise SystemExit(f"corrections.tsv line {n}: unknown label(s) {bad}")
        out[sid] = labels
    return out


def rows() -> list[dict]:
    jargon = JargonDetector(models_dir() / "jargon_lexicon.tsv")
    corrections = load_corrections(HERE / "corrections.tsv")
    out = []
    for cons in iter_consultations():
        last_patient = ""
        turns = list(cons.turns)
        for ti, turn in enumerate(turns):
            if turn.role == "patient":
                continue
            prev_patient = " ".join(t.text for t in turns[max(0, ti - 3):ti] if t.role == "patient") or last_patient
            sents = split_sentences(turn.text)
            for si, sent in enumerate(sents):
                if is_filler(sent):
                    continue
                sid = f"{cons.id}:t{ti:03d}:s{si:02d}"
                nxt = sents[si + 1] if si + 1 < len(sents) else ""
                prv = sents[si - 1] if si > 0 else ""
                labels = preannotate(sent, prev_patient, jargon, nxt, prv)
                prov = "primock57 doctor turn; rules pre-annotation, reviewed"
                if sid in corrections:
                    labels = set(corrections[sid])
                    prov = "primock57 doctor turn; reviewed-corrected"
                out.append({
                    "id": sid,
                    "text": sent,
                    "labels": [x for x in LABELS if x in labels],
                    "consultation": cons.id,
                    "t0": round(turn.start, 2),
                    "provenance": prov,
                })
    return out


def main() -> None:
    data = rows()
    with (HERE / "primock57.jsonl").open("w", encoding="utf-8") as fh:
        for r in data:
            fh.write(json.dumps(r, ensure_ascii=False) + "\n")
    print(f"wrote {len(data)} rows")


if __name__ == "__main__":
    main()
