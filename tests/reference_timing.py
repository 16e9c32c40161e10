"""Independent, deliberately naive reference for the timing behaviours.

Written separately from edge_agent/behaviours/timing.py from the definitions
in docs/coaching.md: brute-force pair loops instead of a sweep, a 1 ms raster
for speaking time instead of interval unions, its own word lists. Slow and
simple on purpose; tests compare it with the real implementation.
"""

from __future__ import annotations

import re

import numpy as np

BACKCHANNEL = set(
    "ok okay k yeah yep yes no um umm uh er erm right alright all mm mmm mm-hmm mm-hm mhm hmm uh-huh fine great sure "
    "good perfect so and oh ah cool lovely excellent brilliant then well i see nope yup hm uhh mmhm sorry pardon huh "
    "ahh aha yeh ya absolutely exactly course of gotcha true indeed wow really sure- ok- mm-mm uh-uh hmm-mm".split()
)
GREETING = set(
    "hello hi hiya hey morning afternoon evening thanks thank you how are nice meet to too doctor dr i'm not bad bye "
    "cheers there it is that's that".split()
)
OPENERS = [
    "how can i help", "how may i help", "how can we help", "how may we help", "what can i do for you",
    "what can we do for you", "what brought you", "what has brought you", "what brings you", "what's been going on",
    "what has been going on", "what is been going on", "what's been happening", "what has been happening",
    "what is been happening", "what seems to be", "what's the problem", "what is the problem", "what's the matter",
    "what is the matter", "how are things", "what would you like to talk", "what would you like to discuss",
    "tell me what", "tell me about what", "tell me a bit about what",
]


def minimal(text):
    ws = re.findall(r"[a-z][a-z'-]*", text.lower())
    if len(ws) > 6:
        return False
    for w in ws:
        if not (w in BACKCHANNEL or w.strip("-'") in BACKCHANNEL or w in GREETING):
            return False
    return True


def reference_metrics(utts, transition=0.5):
    """utts: objects with speaker, t0, t1, text. Returns a plain dict."""
    utts = sorted(utts, key=lambda u: (u.t0, u.t1))
    doc = [u for u in utts if u.speaker == "clinician"]
    pat = [u for u in utts if u.speaker == "patient"]
    doc_turns = [u for u in doc if not minimal(u.text)]
    pat_turns = [u for u in pat if not minimal(u.text)]

    def patient_holds(t):
        for p in pat_turns:
            if p.t0 < t and t < p.t1 - transition:
                return True
        return False

    interruptions = 0
    for d in doc_turns:
        if patient_holds(d.t0):
            interruptions += 1

    # opening
    opener_end = None
    for d in doc:
        low = d.text.lower()
        if any(o in low for o in OPENERS):
            opener_end = d.t1
            break
    candidates = pat_turns if opener_end is None else [p for p in pat_turns if p.t0 >= opener_end - transition]
    opening = None
    interrupted = False
    if candidates:
        begin = candidates[0].t0
        takeover = None
        for d in doc_turns:
            if d.t0 > begin:
                takeover = d
                break
        if takeover is None:
            opening = max(p.t1 for p in pat_turns) - begin
        elif patient_holds(takeover.t0):
            interrupted = True
            opening = takeover.t0 - begin
        else:
            opening = max(0.0, max(p.t1 for p in pat_turns if p.t0 < takeover.t0) - begin)

    # speaking time by 1 ms raster
    end = max([u.t1 for u in utts] + [0.0])
    n = int(np.ceil(end * 1000)) + 2
    d_mask = np.zeros(n, bool)
    o_mask = np.zeros(n, bool)
    for u in utts:
        a, b = int(round(u.t0 * 1000)), int(round(u.t1 * 1000))
        if u.speaker == "clinician":
            d_mask[a:b] = True
        elif u.speaker in ("patient", "other"):
            o_mask[a:b] = True
    d_time, o_time = d_mask.sum() / 1000, o_mask.sum() / 1000
    share = d_time / (d_time + o_time) if d_time + o_time else None

    # monologues: group clinician utterances between consecutive patient-turn onsets
    onsets = sorted(p.t0 for p in pat_turns)
    longest = 0.0
    group_start = None
    group_end = None
    for d in doc:
        new_group = group_start is None
        if not new_group:
            for o in onsets:
                if group_start < o <= d.t0:
                    new_group = True
                    break
        if new_group:
            group_start, group_end = d.t0, d.t1
        else:
            group_end = max(group_end, d.t1)
        longest = max(longest, group_end - group_start)

    # waits
    waits = []
    for d in doc:
        if not d.text.strip().endswith("?"):
            continue
        later_doc = [x.t0 for x in doc_turns if x.t0 > d.t0]
        limit = min(later_doc) if later_doc else float("inf")
        answers = [p for p in pat if p.t0 >= d.t0 and p.t1 > d.t1]
        if not answers:
            continue
        first = min(answers, key=lambda p: (p.t0, p.t1))
        if first.t0 >= limit:
            continue
        waits.append(max(0.0, first.t0 - d.t1))

    d_words = sum(len(u.words) if u.words else len(re.findall(r"[a-z][a-z'-]*", u.text.lower())) for u in doc)
    wpm = d_words / (d_time / 60) if d_time else None
    return {
        "opening_uninterrupted_s": opening,
        "opening_interrupted": interrupted,
        "interruptions": interruptions,
        "talk_share": share,
        "longest_monologue_s": longest,
        "wait_after_question_s": waits,
        "speech_rate_wpm": wpm,
    }
