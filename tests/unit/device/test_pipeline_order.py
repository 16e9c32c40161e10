"""The ASR worker's order of work: what a final waits behind.

No model and no threads: the pipeline's hand-off and its choice of the next job
are driven directly, with a recogniser that only states its shapes.
"""

from __future__ import annotations

from edge_agent.audio import SAMPLE_RATE
from edge_agent.audio.vad import SegmentUpdate, SpeechSegment
from edge_agent.device.pipeline import PipelineConfig, StreamingPipeline, _Closed


class _Shapes:
    sample_rate = SAMPLE_RATE
    hop = 160

    def feature_shape(self, max_samples: int) -> tuple[int, int]:
        return 80, max_samples // 160 + 1


def _pipeline() -> StreamingPipeline:
    return StreamingPipeline(PipelineConfig(), _Shapes(), lambda event: None)  # type: ignore[arg-type]


def _segment(seg_id: int) -> SpeechSegment:
    return SpeechSegment(seg_id, 0)


def test_a_look_ahead_is_never_replaced_by_a_later_partial_request() -> None:
    pipe = _pipeline()
    seg = _segment(0)
    pipe._hand_off(SegmentUpdate(seg, 2 * SAMPLE_RATE, final_candidate=True))
    pipe._hand_off(SegmentUpdate(seg, 3 * SAMPLE_RATE, final_candidate=False))
    pipe._hand_off(SegmentUpdate(seg, 4 * SAMPLE_RATE, final_candidate=False))
    first, second = pipe._take_job(), pipe._take_job()
    assert isinstance(first, SegmentUpdate) and first.final_candidate and first.length == 2 * SAMPLE_RATE
    # only the newest partial request is kept (the older one is counted as skipped)
    assert isinstance(second, SegmentUpdate) and second.length == 4 * SAMPLE_RATE
    assert pipe._take_job() is None and pipe.stats.partials_skipped == 1


def test_closed_segments_go_first_then_look_aheads_then_partials() -> None:
    pipe = _pipeline()
    pipe._hand_off(SegmentUpdate(_segment(1), 3 * SAMPLE_RATE, final_candidate=False))
    pipe._hand_off(SegmentUpdate(_segment(2), 2 * SAMPLE_RATE, final_candidate=True))
    closed = _Closed(0, 0, SAMPLE_RATE, 0.0, 0.0, True)
    pipe._finals.append(closed)
    order = [pipe._take_job() for _ in range(4)]
    assert order[0] is closed
    assert isinstance(order[1], SegmentUpdate) and order[1].final_candidate
    assert isinstance(order[2], SegmentUpdate) and not order[2].final_candidate
    assert order[3] is None


def _whole_windows(feats) -> bool:  # type: ignore[no-untyped-def]
    """Every 1.6 s window the speaker encoder takes over these features is whole."""
    from edge_agent.audio.speaker_frontend import HOP, PARTIAL_FRAMES

    n_frames = 1 + feats.n_samples // HOP
    return all(len(feats.mel[s : s + PARTIAL_FRAMES]) == PARTIAL_FRAMES for s in range(max(1, n_frames - PARTIAL_FRAMES + 1)))


def test_a_piece_committed_past_the_segments_split_is_described_by_audio_the_segment_holds() -> None:
    """A pause's look-ahead became a piece, then the VAD split the segment a little before the
    piece's end (or before its start): the closed segment's features still cover it (this
    crashed the worker: the speaker encoder's windows ran off the features)."""
    import numpy as np

    from edge_agent.audio.speaker_frontend import MelFrontend, SpeakerFeatures
    from edge_agent.device.pipeline import _piece_speaker

    n = 5 * SAMPLE_RATE
    audio = (np.random.default_rng(3).standard_normal(n) * 0.05).astype(np.float32)
    feats = SpeakerFeatures.of(audio, MelFrontend())
    # the VAD's split at the length limit looks for the quietest frame up to 2.5 s back
    for start, stop in ((SAMPLE_RATE, 4 * SAMPLE_RATE), (4 * SAMPLE_RATE, n + 2 * SAMPLE_RATE), (n + SAMPLE_RATE, n + 2 * SAMPLE_RATE)):
        part = _piece_speaker(feats, start, stop, n)
        assert part is not None and 0 < part.n_samples <= stop - min(start, stop - SAMPLE_RATE // 4)
        assert _whole_windows(part), (start, stop)
    assert _piece_speaker(None, 0, n, n) is None
