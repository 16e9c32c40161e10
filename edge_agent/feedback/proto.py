"""The coaching report as the protobuf message that is sealed to the clinician."""

from __future__ import annotations

from edge_agent.feedback.observations import WITHHELD_MARKS, WITHHELD_TIMING
from edge_agent.feedback.report import Feedback
from edge_agent.proto.edge_agent.v1 import feedback_pb2

SCHEMA_VERSION = 1
_SPEAKERS = {"clinician": feedback_pb2.SPEAKER_CLINICIAN, "patient": feedback_pb2.SPEAKER_PATIENT}
# timing event kinds worth a mark on the phone's timeline (a fixed vocabulary, never text;
# tools/phone-web/src/report.js MARK_TEXT names each)
_MARK_KINDS = ("interruption", "opening_redirected", "opening_finished", "monologue", "longest_monologue", "longest_wait",
               "stacked_questions")


def feedback_to_proto(feedback: Feedback, started_unix_s: int = 0) -> feedback_pb2.Feedback:
    message = feedback_pb2.Feedback(
        schema_version=SCHEMA_VERSION,
        duration_s=round(feedback.visit_duration_s, 2),
        started_unix_s=started_unix_s,
        summary=feedback.summary,  # the one strength, if there is one ("What went well: ...")
    )
    for key, value in feedback.timing.to_dict().items():
        # numbers only: event lists serve the observations, not the report
        if isinstance(value, (int, float)) and not isinstance(value, bool) and key not in WITHHELD_TIMING:
            message.timing[key] = float(value)
    for label, count in feedback.label_counts.items():
        message.label_counts[label] = int(count)
    for obs in feedback.observations:
        message.observations.add(
            behaviour=obs.behaviour,
            at_s=round(obs.at_s, 1),
            # the phone prints "At m:ss: <moment>": say what was observed there
            moment=obs.happened or obs.behaviour.replace("_", " "),
            clinician_quote=obs.clinician_quote,
            alternative=obs.alternative,
            rationale=obs.rationale,
        )
    # the picture of the visit: who spoke when (speaker and times only; words never enter it)
    for speaker, t0, t1 in feedback.turns:
        message.timeline.add(speaker=_SPEAKERS.get(speaker, feedback_pb2.SPEAKER_OTHER), start_s=round(t0, 2), end_s=round(t1, 2))
    for event in feedback.timing.events:
        if event.kind in _MARK_KINDS and event.kind not in WITHHELD_MARKS:
            message.marks.add(kind=event.kind, at_s=round(event.at_s, 1))
    return message
