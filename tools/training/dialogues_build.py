"""Build the written training dialogues from their authoring sources.

    python -m tools.training.dialogues_build

Sources: tools/training/data/dialogues/src/<prefix>_*.txt, where the prefix names
the source (mi -> mi_counselling, co -> consultations_other, hc -> health_coaching).
Authoring format, one turn per line:

    ## <session id>
    setting: <short>
    style: <short>
    P: patient (or parent) turn, context only
    C: First sentence. {oq} Second sentence, a reflection? {ref,cq | note text}

Every non-filler clinician sentence is followed by ``{labels | optional note}``;
filler-only sentences ("Okay.", "Mm-hm.") may stand without a marker and are
dropped from the labelled items, as in the gold packets (docs/labelling.md §1).
Label shorthands: oq cq ag emp ref cr(=reflection+complex_reflection)
sum(=reflection+summary) info adv awp(=advice+advice_with_permission) tb
jar[:term] rea part ice sn sig aff. ``jar:HbA1c`` adds "jargon: HbA1c" to the note.

Writes <source>.jsonl (one labelled clinician sentence per line) and
<source>_sessions.jsonl (full transcripts) beside src/. The turn text is the
sentences joined by spaces; the build checks that splitting it with the
project's sentence splitter gives back exactly the authored sentences.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

from edge_agent.behaviours.text import is_filler, split_sentences

OUT = Path(__file__).resolve().parent / "data" / "dialogues"
SRC = OUT / "src"

SOURCES = {"mi": "mi_counselling", "co": "consultations_other", "hc": "health_coaching"}

ORDER = (
    "open_question", "closed_question", "agenda_solicitation", "empathy", "reflection",
    "information", "advice", "teach_back", "jargon", "reassurance", "partnership",
    "ice_question", "safety_netting", "signposting", "summary", "affirmation",
    "complex_reflection", "advice_with_permission",
)

SHORT = {
    "oq": ["open_question"], "cq": ["closed_question"], "ag": ["agenda_solicitation"],
    "emp": ["empathy"], "ref": ["reflection"], "cr": ["reflection", "complex_reflection"],
    "sum": ["reflection", "summary"], "info": ["information"], "adv": ["advice"],
    "awp": ["advice", "advice_with_permission"], "tb": ["teach_back"], "jar": ["jargon"],
    "rea": ["reassurance"], "part": ["partnership"], "ice": ["ice_question"],
    "sn": ["safety_netting"], "sig": ["signposting"], "aff": ["affirmation"],
}

MARK = re.compile(r"\{([^{}]*)\}")


class BuildError(Exception):
    pass


def parse_marker(body: str, where: str) -> tuple[list[str], str]:
    codes, _, note = body.partition("|")
    labels: set[str] = set()
    notes = []
    for code in [c.strip() for c in codes.split(",") if c.strip()]:
        key, _, term = code.partition(":")
        if key not in SHORT:
            raise BuildError(f"{where}: unknown label code {code!r}")
        labels.update(SHORT[key])
        if key == "jar" and term:
            notes.append(f"jargon: {term.strip()}")
    if note.strip():
        notes.append(note.strip())
    return [x for x in ORDER if x in labels], "; ".join(notes)


def parse_clinician(line: str, where: str) -> tuple[str, list[tuple[str, list[str], str]]]:
    """Return (turn text, [(sentence, labels or None for filler, note)])."""
    sents: list[tuple[str, list[str] | None, str]] = []
    pos = 0
    for m in MARK.finditer(line):
        chunk = line[pos:m.start()].strip()
        pos = m.end()
        parts = split_sentences(chunk)
        if not parts:
            raise BuildError(f"{where}: label marker without a sentence")
        for p in parts[:-1]:
            if not is_filler(p):
                raise BuildError(f"{where}: unlabelled sentence {p!r}")
            sents.append((p, None, ""))
        labels, note = parse_marker(m.group(1), where)
        if is_filler(parts[-1]):
            if labels or note:
                raise BuildError(f"{where}: filler sentence carries labels: {parts[-1]!r}")
            sents.append((parts[-1], None, ""))
            continue
        sents.append((parts[-1], labels, note))
    tail = line[pos:].strip()
    for p in split_sentences(tail):
        if not is_filler(p):
            raise BuildError(f"{where}: unlabelled sentence {p!r}")
        sents.append((p, None, ""))
    text = " ".join(s for s, _, _ in sents)
    if split_sentences(text) != [s for s, _, _ in sents]:
        raise BuildError(f"{where}: sentence split mismatch: {split_sentences(text)}")
    return text, sents


def parse_file(path: Path) -> list[dict]:
    sessions: list[dict] = []
    cur: dict | None = None
    for n, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        line = raw.strip()
        where = f"{path.name}:{n}"
        if not line or (line.startswith("#") and not line.startswith("## ")):
            continue
        if line.startswith("## "):
            cur = {"session": line[3:].strip(), "setting": "", "style": "", "turns": [], "file": path.name}
            sessions.append(cur)
            continue
        if cur is None:
            raise BuildError(f"{where}: text before the first session header")
        if line.startswith("setting:"):
            cur["setting"] = line.split(":", 1)[1].strip()
        elif line.startswith("style:"):
            cur["style"] = line.split(":", 1)[1].strip()
        elif line.startswith("P:"):
            text = line[2:].strip()
            if MARK.search(text):
                raise BuildError(f"{where}: label marker on a patient turn")
            cur["turns"].append({"speaker": "patient", "text": text})
        elif line.startswith("C:"):
            text, sents = parse_clinician(line[2:].strip(), where)
            if cur["turns"] and cur["turns"][-1]["speaker"] == "clinician":
                raise BuildError(f"{where}: two clinician turns in a row (merge them or add the patient's turn)")
            cur["turns"].append({"speaker": "clinician", "text": text, "_sents": sents})
        else:
            raise BuildError(f"{where}: cannot parse {line[:40]!r}")
    return sessions


def items(source: str, sess: dict) -> list[dict]:
    out = []
    turns = sess["turns"]
    for ti, turn in enumerate(turns):
        if turn["speaker"] != "clinician":
            continue
        sents = turn["_sents"]
        real = [i for i, (_, lab, _) in enumerate(sents) if lab is not None]
        prev = [{"speaker": t["speaker"], "text": t["text"]} for t in turns[max(0, ti - 3):ti]]
        nxt_turn = turns[ti + 1] if ti + 1 < len(turns) else None
        for k, si in enumerate(real):
            text, labels, note = sents[si]
            ctx = list(prev)
            if si > 0:
                ctx.append({"speaker": "clinician", "text": " ".join(s for s, _, _ in sents[:si]), "same_turn": True})
            nxt = sents[real[k + 1]][0] if k + 1 < len(real) else None
            row = {
                "id": f"{source}-{sess['session']}:t{ti:03d}:s{si:02d}",
                "source": source,
                "session": sess["session"],
                "setting": sess["setting"],
                "style": sess["style"],
                "text": text,
                "context": ctx,
                "next": nxt,
                "next_turn": ({"speaker": nxt_turn["speaker"], "text": nxt_turn["text"]} if nxt_turn else None),
                "labels": labels,
            }
            if note:
                row["note"] = note
            out.append(row)
    return out


def build(src: Path = SRC, out: Path = OUT) -> dict[str, tuple[int, int]]:
    by_source: dict[str, list[dict]] = {s: [] for s in SOURCES.values()}
    for path in sorted(src.glob("*.txt")):
        prefix = path.name.split("_", 1)[0]
        if prefix not in SOURCES:
            raise BuildError(f"{path.name}: unknown source prefix {prefix!r}")
        by_source[SOURCES[prefix]].extend(parse_file(path))
    stats = {}
    for source, sessions in by_source.items():
        seen = set()
        rows = []
        for sess in sessions:
            if sess["session"] in seen:
                raise BuildError(f"{source}: duplicate session {sess['session']}")
            seen.add(sess["session"])
            if not sess["setting"] or not sess["style"]:
                raise BuildError(f"{source}/{sess['session']}: setting and style are required")
            rows.extend(items(source, sess))
        with (out / f"{source}.jsonl").open("w", encoding="utf-8") as fh:
            for r in rows:
                fh.write(json.dumps(r, ensure_ascii=False) + "\n")
        with (out / f"{source}_sessions.jsonl").open("w", encoding="utf-8") as fh:
            for sess in sessions:
                fh.write(json.dumps({
                    "session": sess["session"], "setting": sess["setting"], "style": sess["style"],
                    "turns": [{"speaker": t["speaker"], "text": t["text"]} for t in sess["turns"]],
                }, ensure_ascii=False) + "\n")
        stats[source] = (len(sessions), len(rows))
    return stats


def main() -> None:
    try:
        stats = build()
    except BuildError as exc:
        sys.exit(f"dialogues_build: {exc}")
    for source, (ns, nr) in stats.items():
        print(f"{source}: {ns} sessions, {nr} labelled sentences")


if __name__ == "__main__":
    main()
