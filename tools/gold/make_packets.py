"""Build the UNLABELLED annotation packets for the behaviour gold set (issue 13).

    PYTHONPATH=. python tools/gold/make_packets.py            # writes tools/gold/packets/
    PYTHONPATH=. python tools/gold/make_packets.py --check    # rebuild in memory, compare

Outputs (deterministic for a given --seed):

- ``packets/labels_primock57.jsonl``: ~900 clinician sentences, one JSON object per
  line: ``id`` (``<consultation>:t<turn>:s<sentence>``, the same ids as
  models/data/behaviours/primock57.jsonl), ``text``, ``context`` (the three
  preceding turns of either speaker, then the clinician's earlier sentences of the
  same turn), ``next`` (the clinician's next sentence in the same turn, or null) and
  ``next_turn`` (the turn that follows). No labels: annotators add them.
- ``packets/events_primock57/<consultation>.txt``: every consultation as one
  time-ordered transcript for the event annotators.
- ``sampling/labels_primock57.sampling.jsonl``: how each item was drawn (stratum,
  candidate pool size). NOT for annotators: the pool names say which cue phrase
  made an item a candidate; a cue match is never a label.

Sampling: every consultation gives ``--n-random`` sentences drawn uniformly (the
"random" stratum, which keeps natural prevalences estimable), then candidate pools
found by cue phrases (rare functions: agenda, ICE, teach-back, safety-netting,
empathy, ...) are oversampled up to a quota each, round-robin over consultations so
that no visit dominates. Cues only choose which sentences are shown; they never
decide a label.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import sys
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

# The corpus readers (to move to tools/corpus/); the sentence splitter and filler
# test are the ones that made the ids of models/data/behaviours/primock57.jsonl.
from edge_agent.behaviours.text import is_filler, split_sentences, words
from tools.corpus.primock import Consultation, iter_consultations, primock_dir

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
SPEAKER = {"doctor": "DOCTOR", "patient": "PATIENT"}
CONTEXT_TURNS = 3


@dataclass(frozen=True)
class Sentence:
    id: str
    consultation: str
    turn: int
    index: int  # sentence index in the turn (fillers keep their index)
    text: str
    start: float  # start of the turn (s)
    context: tuple[dict, ...]
    next: str | None
    next_turn: dict | None


def _turn_dict(turn) -> dict:
    return {"speaker": turn.role, "text": turn.text}


def sentences_of(cons: Consultation) -> list[Sentence]:
    """Non-filler clinician sentences with their context, in time order."""
    out = []
    turns = cons.turns
    for ti, turn in enumerate(turns):
        if turn.role != "doctor":
            continue
        sents = split_sentences(turn.text)
        before = [_turn_dict(t) for t in turns[max(0, ti - CONTEXT_TURNS):ti]]
        after = _turn_dict(turns[ti + 1]) if ti + 1 < len(turns) else None
        for si, sent in enumerate(sents):
            if is_filler(sent):
                continue
            context = list(before)
            if si > 0:
                context.append({"speaker": "doctor", "text": " ".join(sents[:si]), "same_turn": True})
            nxt = sents[si + 1] if si + 1 < len(sents) else None
            out.append(
                Sentence(
                    id=f"{cons.id}:t{ti:03d}:s{si:02d}",
                    consultation=cons.id,
                    turn=ti,
                    index=si,
                    text=sent,
                    start=round(turn.start, 2),
                    context=tuple(context),
                    next=nxt,
                    next_turn=after,
                )
            )
    return out


# --- candidate pools: cue phrases that make a sentence WORTH SHOWING, not a label ---

_LEAD = r"^\W*(?:(?:and|so|but|um+|uh+|er+m?|ok(?:ay)?|right|alright|well|now|yeah|just|oh)\W+)*"

POOLS: dict[str, str] = {
    "agenda": r"\b(?:any|some)(?:thing|one)? else\b|\bwhat else\b|\bany other (?:concerns?|issues?|questions?|problems?|things?)\b"
    r"|\bbefore (?:we|you|i) (?:go|finish|start)\b|\bwanted to (?:talk|discuss|mention|ask)\b",
    "ice": r"\bideas?\b|\bthoughts?\b|\bwhat do you think\b|\bworr|\bconcern|\bexpect|\bhop(?:e|ed|ing)\b|\blooking for\b"
    r"|\bhelpful\b|\bhow (?:serious|bad) do you\b|\bfear|\bscared\b|\bafraid\b|\bwhy do you think\b|\bwanted (?:from|out of)\b",
    "teach_back": r"\btell me back\b|\brepeat\b|\bin your own words\b|\bsummari[sz]e\b|\bwhat (?:will|would|are) you (?:going to )?do\b"
    r"|\bunderstand|\bmake sense\b|\bclear\b|\bjust to (?:check|make sure)\b|\bgo over\b|\bexplain (?:it|that|back|to)\b",
    "safety_net": r"\bif\b.{0,60}\b(?:worse|deteriorat|doesn'?t|don'?t|not (?:better|improv|settl|go)|develop|notice|persist|carr(?:y|ies) on|still)\b"
    r"|\bcome back\b|\bcall (?:us|111|999|an ambulance|the)\b|\b111\b|\b999\b|\ba ?(?:&|and) ?e\b|\bemergency\b|\bambulance\b"
    r"|\bstraight away\b|\burgent|\bget in touch\b|\bcontact\b|\bseek\b|\bfollow[- ]?up\b|\breview\b",
    "empathy": r"\bsorry (?:to|about|that|you)\b|\bmust (?:be|have been)\b|\bcan imagine\b|\bunderstand(?:able|ably)?\b|\bdifficult\b"
    r"|\bhard (?:for|time|on)\b|\bfrustrat|\bawful\b|\bhorrible\b|\btough\b|\bstress|\bupsett|\bnot (?:nice|pleasant|fun)\b",
    "reassurance": r"\bworr(?:y|ied|ying)\b|\breassur|\bcommon\b|\bnothing (?:serious|sinister|to)\b|\bnot (?:serious|dangerous|sinister)\b"
    r"|\bsettle|\bnormal\b|\bgood news\b|\bdon'?t think (?:it|this|there|that)\b|\bright thing\b|\bunlikely\b|\bget better\b|\bclear up\b",
    "partnership": r"\bhow does that sound\b|\bhow do you feel about\b|\bhappy (?:to|with)\b|\b(?:ok(?:ay)?|alright) with\b|\bprefer|\bwould you like\b"
    r"|\bshall we\b|\btogether\b|\byour (?:choice|call|decision)\b|\bup to you\b|\boptions?\b|\bagree|\bcomfortable\b"
    r"|\bis that (?:ok(?:ay)?|alright|all right|fine)\b|\bsound (?:ok|okay|good|alright|reasonable)\b",
    "reflection": _LEAD + r"(?:you(?:'ve| have| had| are|'re| were| mentioned| said| say| feel|'d| told| described)\b"
    r"|(?:it|that) sounds\b|sounds like\b|if i(?:'ve| have) (?:understood|got)\b|so (?:it|the|your|that)\b)"
    r"|\bjust to (?:recap|summari[sz]e)\b|\bto (?:recap|summari[sz]e)\b|\bin summary\b",
    "signposting": r"\bi(?:'m| am) (?:going|gonna) to\b|\bi(?:'d| would) like to (?:ask|examine|go|talk|move|take|just|have)\b|\blet me\b"
    r"|\blet'?s\b|\bmoving on\b|\bfirst(?:ly)?\b|\bnext\b|\b(?:a )?(?:few|couple of) (?:more |other |quick )?questions\b|\bgoing to ask\b",
    "open_form": _LEAD + r"(?:how|what|why|tell|describe|talk|explain|walk|in what way)\b",
    "invitation_form": r"\b(?:can|could|would) you (?:just )?(?:tell|describe|explain|talk|say|walk|give)\b|\bare you able to (?:describe|tell)\b"
    r"|\b(?:do you mind|would you mind) (?:telling|describing|explaining)\b",
    "advice_info": r"\b(?:i'?d|i would|we'?d|we would) (?:recommend|suggest|advise)\b|\byou (?:should|need to|must|might want|could try|can try)\b"
    r"|\bmake sure\b|\btry (?:to|and)\b|\bi think (?:it|this|you|that)\b|\b(?:it|this) (?:sounds|looks) like\b|\bprobably\b|\blikely\b"
    r"|\bcaused by\b|\b(?:i'?ll|we'?ll|i will|we will) (?:prescribe|refer|send|book|arrange|give|do|check|organi[sz]e|start)\b|\bprescri",
    "permission": r"\b(?:would|is) it (?:be )?(?:ok(?:ay)?|alright|all right)\b|\bdo you mind if\b|\bcan i (?:suggest|give|share|tell|offer|ask)\b"
    r"|\bwould you like (?:me|some|to hear|to know)\b|\bmay i\b|\bif that'?s (?:ok(?:ay)?|alright|all right)\b|\bwith your permission\b",
    "affirmation": r"\bwell done\b|\bgood (?:that|for you|job|idea|thing)\b|\bthat'?s (?:great|really good|sensible|good)\b"
    r"|\byou(?:'ve| have) done (?:well|the right|really)\b|\bsensible\b|\bgreat (?:that|job)\b",
}

# Quota per pool, taken smallest pool first so that the rarest get theirs.
QUOTAS: dict[str, int] = {
    "agenda": 40,
    "ice": 50,
    "teach_back": 35,
    "safety_net": 50,
    "empathy": 40,
    "reassurance": 40,
    "partnership": 40,
    "reflection": 45,
    "signposting": 25,
    "open_form": 40,
    "invitation_form": 25,
    "advice_info": 30,
    "permission": 20,
    "jargon": 30,
    "affirmation": 15,
    "patient_overlap": 25,
}


def load_lexicon_terms(path: Path) -> list[re.Pattern]:
    """Terms of the jargon lexicon, used only to find candidate sentences."""
    pats = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        cols = line.split("\t")
        flags = 0 if len(cols) > 2 and cols[2] == "cs" else re.IGNORECASE
        pats.append(re.compile(r"(?<![A-Za-z])" + re.escape(cols[0]) + r"(?![A-Za-z])", flags))
    return pats


_STOP = frozenset(
    "the a an and or but so to of in on at for with is are was were be been it its it's i i'm you you're your "
    "my me we they that this there have has had do does did not no yes yeah um uh just like very quite bit "
    "okay ok what how when where any some about then as if can could would will".split()
)


def patient_overlap(sent: Sentence) -> bool:
    """The sentence reuses >= 3 content words of the patient's preceding words."""
    patient = " ".join(c["text"] for c in sent.context if c["speaker"] == "patient")
    mine = {w for w in words(sent.text) if w not in _STOP and len(w) > 2}
    theirs = {w for w in words(patient) if w not in _STOP and len(w) > 2}
    return len(mine & theirs) >= 3


def pools_of(sent: Sentence, compiled: dict[str, re.Pattern], lexicon: list[re.Pattern]) -> list[str]:
    low = sent.text.lower()
    names = [name for name, pat in compiled.items() if pat.search(low)]
    if any(p.search(sent.text) for p in lexicon):
        names.append("jargon")
    if patient_overlap(sent):
        names.append("patient_overlap")
    return names


def sample(all_sents: list[Sentence], seed: int, n_random: int, lexicon_path: Path) -> tuple[list[Sentence], list[dict]]:
    rng = random.Random(seed)
    compiled = {k: re.compile(v) for k, v in POOLS.items()}
    lexicon = load_lexicon_terms(lexicon_path)
    by_cons: dict[str, list[Sentence]] = defaultdict(list)
    for s in all_sents:
        by_cons[s.consultation].append(s)
    chosen: dict[str, dict] = {}

    # 1. random stratum: n_random per consultation, uniform.
    for cid in sorted(by_cons):
        pool = by_cons[cid]
        for s in rng.sample(pool, min(n_random, len(pool))):
            chosen[s.id] = {"id": s.id, "stratum": "random", "pool_size": len(pool)}

    # 2. candidate pools, round-robin over consultations, rarest pool first.
    members: dict[str, dict[str, list[Sentence]]] = {name: defaultdict(list) for name in QUOTAS}
    for s in all_sents:
        for name in pools_of(s, compiled, lexicon):
            members[name][s.consultation].append(s)
    sizes = {name: sum(len(v) for v in members[name].values()) for name in QUOTAS}
    for name in sorted(QUOTAS, key=lambda n: (sizes[n], n)):
        queues = {cid: rng.sample(v, len(v)) for cid, v in sorted(members[name].items())}
        order = sorted(queues)
        rng.shuffle(order)
        taken = 0
        while taken < QUOTAS[name] and any(queues.values()):
            for cid in order:
                if taken >= QUOTAS[name]:
                    break
                q = queues[cid]
                while q and q[0].id in chosen:
                    q.pop(0)
                if q:
                    s = q.pop(0)
                    chosen[s.id] = {"id": s.id, "stratum": f"candidate:{name}", "pool_size": sizes[name]}
                    taken += 1
    items = sorted((s for s in all_sents if s.id in chosen), key=lambda s: s.id)
    return items, [chosen[s.id] for s in items]


def item_json(s: Sentence) -> dict:
    return {
        "id": s.id,
        "text": s.text,
        "context": list(s.context),
        "next": s.next,
        "next_turn": s.next_turn,
        "consultation": s.consultation,
        "turn_start": s.start,
    }


def transcript(cons: Consultation) -> str:
    lines = [
        f"# {cons.id} (PriMock57, Papadopoulos Korfiatis et al. 2022, CC BY 4.0)",
        "# turn [start–end] in seconds from the start of the recording; turns ordered by start time;",
        "# a turn that starts before the previous one ends overlaps it.",
        "",
    ]
    for ti, t in enumerate(cons.turns):
        lines.append(f"t{ti:03d} [{t.start:.2f}–{t.end:.2f}] {SPEAKER[t.role]}: {t.text}")
    return "\n".join(lines) + "\n"


def build(seed: int, n_random: int) -> dict[str, str]:
    """Every output file as {relative path: content}."""
    conss = list(iter_consultations())
    all_sents = [s for c in conss for s in sentences_of(c)]
    items, strata = sample(all_sents, seed, n_random, ROOT / "models" / "jargon_lexicon.tsv")
    files = {
        "packets/labels_primock57.jsonl": "".join(json.dumps(item_json(s), ensure_ascii=False) + "\n" for s in items),
        "sampling/labels_primock57.sampling.jsonl": "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in strata),
    }
    for c in conss:
        files[f"packets/events_primock57/{c.id}.txt"] = transcript(c)
    return files


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seed", type=int, default=13)
    ap.add_argument("--n-random", type=int, default=6, help="uniform sentences per consultation")
    ap.add_argument("--out", type=Path, default=HERE)
    ap.add_argument("--check", action="store_true", help="only compare with the files on disk")
    args = ap.parse_args(argv)
    if not primock_dir().is_dir():
        print(f"PriMock57 not found at {primock_dir()}; set EDGE_AGENT_SHARED", file=sys.stderr)
        return 2
    files = build(args.seed, args.n_random)
    if args.check:
        stale = [p for p, text in files.items() if not (args.out / p).is_file() or (args.out / p).read_text(encoding="utf-8") != text]
        for p in stale:
            print(f"differs: {p}")
        return 1 if stale else 0
    for rel, text in files.items():
        path = args.out / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    strata = [json.loads(x) for x in files["sampling/labels_primock57.sampling.jsonl"].splitlines()]
    counts: dict[str, int] = defaultdict(int)
    for r in strata:
        counts[r["stratum"]] += 1
    n_cons = len({r["id"].split(":")[0] for r in strata})
    print(f"labels packet: {len(strata)} sentences from {n_cons} consultations")
    for k in sorted(counts):
        print(f"  {k:28s} {counts[k]}")
    print(f"event transcripts: {sum(p.startswith('packets/events') for p in files)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
