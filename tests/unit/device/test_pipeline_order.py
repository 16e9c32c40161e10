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
    return SpeechSegment(seg_id, None, 0)  # type: ignore[arg-type]  # never read here


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
