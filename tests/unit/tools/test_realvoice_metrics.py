"""Unit tests of tools/realvoice/metrics.py: small hand-made cases with known answers."""

from __future__ import annotations

import pytest

from tools.realvoice.metrics import (
    Change,
    Event,
    HypWord,
    Interval,
    align,
    attribution,
    bag_coverage,
    best_mapping,
    estimate_stream_start,
    final_latencies,
    hypothesis_changes,
    identity_swaps,
    normalise,
    onset_latencies,
    reference_changes,
    score_words,
    turn_boundaries,
    turn_edge_errors,
)

TURNS = [
    Interval("clinician", 0.0, 10.0),
    Interval("patient", 10.5, 20.0),
    Interval("clinician", 19.5, 30.0),  # starts 0.5 s before the patient stops
]


def words_every(start: float, stop: float, speaker: str, step: float = 0.5) -> list[HypWord]:
    out = []
    t = start
    while t + 0.3 <= stop:
        out.append(HypWord("w", t, t + 0.3, speaker))
        t += step
    return out


def test_words_in_overlaps_and_gaps():
    intervals = TURNS + [Interval("patient", 5.0, 5.5, "backchannel")]
    scored = score_words(
        [
            HypWord("a", 1.0, 1.2, "x"),  # clinician
            HypWord("b", 5.1, 5.3, "x"),  # back-channel overlap
            HypWord("c", 10.3, 10.4, "y"),  # gap: 0.15 s from the patient, 0.35 s from the clinician
            HypWord("d", 19.6, 19.8, "y"),  # turn overlap
            HypWord("e", 40.0, 40.2, "y"),  # nothing near: unmatched
        ],
        intervals,
        tolerance_s=0.3,
    )
    assert [s.ref for s in scored] == ["clinician", None, "patient", None, None]
    assert scored[1].overlap == ("clinician", "patient")
    assert scored[3].overlap == ("clinician", "patient")
    result = attribution(scored)
    assert result.words == 2 and result.overlap_words == 2 and result.unmatched_words == 1


def test_attribution_mapped_versus_labelled():
    words = words_every(0, 10, "patient") + words_every(10.5, 20, "clinician")
    result = attribution(score_words(words, TURNS))
    assert result.mapped == 1.0  # consistent, only the names are exchanged
    assert result.labelled == 0.0  # with enrolment the names matter
    assert result.mapping == {"patient": "clinician", "clinician": "patient"}


def test_attribution_counts_errors():
    words = words_every(0, 10, "A")  # 20 words
    words[-4:] = [HypWord(w.text, w.t0, w.t1, "B") for w in words[-4:]]  # turn end given to the next speaker
    words += words_every(10.5, 19.4, "B")
    result = attribution(score_words(words, TURNS))
    assert result.mapping == {"A": "clinician", "B": "patient"}
    assert result.mapped == pytest.approx((len(words) - 4) / len(words), abs=1e-4)
    assert result.per_speaker_mapped["clinician"] == pytest.approx(16 / 20)
    assert result.per_speaker_mapped["patient"] == 1.0


def test_best_mapping_one_to_one_with_extra_label():
    pairs = [("A", "p")] * 5 + [("B", "p")] * 3 + [("C", "c")] * 2
    assert best_mapping(pairs) == {"A": "p", "C": "c"}  # B cannot also take p


def test_best_mapping_tie_prefers_given_mapping():
    pairs = [("A", "p"), ("A", "c")]
    assert best_mapping(pairs, prefer={"A": "c"}) == {"A": "c"}
    assert best_mapping(pairs, prefer={"A": "p"}) == {"A": "p"}


def long_visit(swap_at: float | None, end: float = 120.0) -> tuple[list[Interval], list[HypWord]]:
    """Turns of 5 s alternating; labels right until swap_at, exchanged after."""
    turns, words = [], []
    t, k = 0.0, 0
    while t < end:
        ref = "clinician" if k % 2 == 0 else "patient"
        turns.append(Interval(ref, t, t + 5.0))
        other = "patient" if ref == "clinician" else "clinician"
        for w in words_every(t, t + 5.0, ref):
            swapped = swap_at is not None and w.t0 >= swap_at
            words.append(HypWord(w.text, w.t0, w.t1, other if swapped else ref))
        t += 5.0
        k += 1
    return turns, words


def test_no_swap_when_labels_are_stable():
    turns, words = long_visit(None)
    assert identity_swaps(score_words(words, turns)).swaps == 0


def test_one_swap_when_labels_exchange_mid_visit():
    turns, words = long_visit(68.0)
    scored = score_words(words, turns)
    swaps = identity_swaps(scored)
    assert swaps.swaps == 1
    assert swaps.disagreeing_windows >= 1
    # the global mapping keeps the longer part right: accuracy about 68/120
    assert attribution(scored).mapped == pytest.approx(68 / 120, abs=0.03)


def test_swap_and_back_counts_two():
    turns, words = long_visit(None)
    words = [HypWord(w.text, w.t0, w.t1, {"clinician": "patient", "patient": "clinician"}[w.speaker]) if 30 <= w.t0 < 60 else w for w in words]
    assert identity_swaps(score_words(words, turns)).swaps == 2


def test_scattered_errors_are_not_swaps():
    turns, words = long_visit(None)
    # every 7th word wrong: ~14 % errors spread everywhere
    words = [HypWord(w.text, w.t0, w.t1, "patient" if (i % 7 == 0 and w.speaker == "clinician") else w.speaker) for i, w in enumerate(words)]
    scored = score_words(words, turns)
    assert identity_swaps(scored).swaps == 0
    assert attribution(scored).mapped < 1.0


def test_reference_changes_gap_and_overlap():
    changes = reference_changes(TURNS + [Interval("patient", 3.0, 3.4, "backchannel")])
    assert changes == [Change(10.0, 10.5), Change(19.5, 20.0)]  # back-channels are not turns


def test_turn_boundary_errors():
    ref = reference_changes(TURNS)
    words = [HypWord("a", 9.0, 9.6, "A"), HypWord("b", 10.0, 11.0, "B"), HypWord("c", 11.0, 17.9, "B"), HypWord("d", 18.5, 19.0, "A")]
    hyp = hypothesis_changes(words)
    assert hyp == [Change(9.6, 10.0), Change(17.9, 18.5)]
    result = turn_boundaries(ref, hyp)
    assert result.errors == [0.0, 1.0]  # first meets the gap; second is 1.0 s early
    assert result.spurious == 0
    assert result.p90 == pytest.approx(0.9)


def test_missed_change_is_capped_and_spurious_change_counted():
    ref = [Change(10.0, 10.5)]
    hyp = [Change(30.0, 30.1)]
    result = turn_boundaries(ref, hyp, cap_s=10.0)
    assert result.errors == [10.0]
    assert result.spurious == 1


def test_turn_end_words_to_next_speaker():
    words = words_every(0, 10, "A")
    words = [HypWord(w.text, w.t0, w.t1, "B") if w.t0 >= 9.0 else w for w in words]  # last second given away
    words += words_every(10.5, 19.0, "B")
    scored = score_words(words, TURNS)
    edges = turn_edge_errors(scored, TURNS, {"A": "clinician", "B": "patient"})
    assert edges["turn_end_to_next_speaker"] == 1.0 or edges["turn_end_to_next_speaker"] > 0.5
    assert edges["turn_start_to_previous_speaker"] == 0.0


def test_normalise():
    assert normalise("Mm-hm, I'm OK. Uh, forty-two!") == ["hm", "i'm", "ok", "forty", "two"]  # "mm" is a filler


def test_alignment_coverage_and_wer():
    ref = ["the", "cat", "sat", "on", "the", "mat", "today"]
    hyp = ["the", "cat", "sat", "in", "the", "mat"]  # one substitution, one deletion
    result = align(ref, hyp)
    assert (result.matched, result.substitutions, result.deletions, result.insertions) == (5, 1, 1, 0)
    assert result.coverage == pytest.approx(5 / 7, abs=1e-4)
    assert result.wer == pytest.approx(2 / 7, abs=1e-4)
    assert result.lost == [3, 6]
    assert result.deleted == [6] and result.deletion_rate == pytest.approx(1 / 7, abs=1e-4)


def test_alignment_insertions_and_empty():
    assert align(["a", "b"], ["x", "a", "y", "b", "z"]).insertions == 3
    assert align(["a", "b"], []).coverage == 0.0
    assert align([], ["a"]).coverage is None


def test_alignment_lost_block_in_the_middle():
    ref = [f"w{i}" for i in range(100)]
    hyp = ref[:20] + ref[80:]  # 60 words lost (a failed segment)
    result = align(ref, hyp)
    assert result.coverage == 0.4
    assert result.lost == list(range(20, 80))
    assert result.deleted == list(range(20, 80)) and result.deletion_rate == 0.6


def test_bag_coverage():
    assert bag_coverage(["a", "a", "b", "c"], ["a", "b", "b"]) == 0.5


def test_stream_start_and_latencies():
    start = 100.0
    turns = [Interval("clinician", 1.0, 4.0), Interval("patient", 4.5, 9.0)]
    events = [
        Event("partial", 0.8, 1.6, start + 1.6 + 0.05, "hello"),
        Event("final", 0.8, 3.9, start + 4.0 + 0.6, "hello there", words=(HypWord("hello", 1.0, 1.5), HypWord("there", 3.5, 3.9))),
        Event("partial", 4.3, 5.0, start + 5.0 + 0.3, "yes"),
        Event("final", 4.3, 8.9, start + 9.0 + 2.0, "yes it hurts", words=(HypWord("yes", 4.6, 5.0), HypWord("hurts", 8.5, 8.9))),
    ]
    est = estimate_stream_start(events)
    assert est == pytest.approx(start + 0.05)
    lat, missing = final_latencies(events, turns, start)
    assert lat == pytest.approx([0.6, 2.0]) and missing == 0
    assert onset_latencies(events, turns, start) == pytest.approx([0.65, 0.8])


def test_final_latency_missing_when_turn_end_has_no_words():
    turns = [Interval("clinician", 0.0, 10.0)]
    events = [Event("final", 0.0, 3.0, 5.0, "x", words=(HypWord("x", 1.0, 2.0),))]
    lat, missing = final_latencies(events, turns, 0.0)
    assert lat == [] and missing == 1
