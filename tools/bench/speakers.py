"""``edge-agent bench speakers``: attribution accuracy and cost on espeak-voiced PriMock57 conversations."""

from __future__ import annotations

from edge_agent.speakers.encoder import EncoderConfig, SpeakerEncoder
from edge_agent.speakers.enrol import enrol


def bench_speakers(
    n_conversations: int = 10, seconds: float = 180.0, threads: int = 1, pipeline_conversations: int = 0, paced_seconds: float = 0.0
) -> dict[str, object]:
    """Attribution accuracy with/without enrolment on PriMock57 espeak conversations, plus cost.

    Uses the consultations held out from the role classifier's training, one
    espeak voice pair per conversation; the clinician enrols on doctor lines
    from later in the same consultation (not part of the scored audio).
    """
    from edge_agent.speakers.role import RoleClassifier, held_out
    from tools.bench.speakers_eval import EvalConversation, RefTurn, evaluate
    from tools.corpus import synth
    from tools.corpus.primock import consultation_ids, load_consultation

    encoder = SpeakerEncoder(EncoderConfig(threads=threads))
    convs = []
    for k, cid in enumerate(held_out(consultation_ids())[:n_conversations]):
        cons = load_consultation(cid)
        voices = synth.VOICE_PAIRS[k % len(synth.VOICE_PAIRS)]
        conv = synth.opening(cons, seconds, voices)
        later = [t.text for t in cons.turns if t.role == "doctor" and t.start > seconds + 20][:10]
        vp = enrol(synth.speak_lines(later, voices[0]), encoder)
        convs.append(EvalConversation(cid, conv.audio, [RefTurn(t.role, t.t0, t.t1, t.text) for t in conv.turns], vp))
    result = evaluate(convs, encoder, RoleClassifier())
    result["audio_per_conversation_s"] = seconds
    if pipeline_conversations > 0:
        # the live figure: the same conversations through VAD + Whisper + attribution, scored by word time
        from tools.bench.speakers_eval import pipeline_accuracy

        live = pipeline_accuracy(convs[:pipeline_conversations])
        result["pipeline_with_enrolment"] = live.pop("with_enrolment")
        result["pipeline_without_enrolment"] = live.pop("without_enrolment")
        result["pipeline"] = live
    if paced_seconds > 0 and convs:
        # the cost figure: the first conversation through the pipeline paced like a microphone
        from tools.bench.speakers_eval import first_seconds, pipeline_accuracy

        paced = pipeline_accuracy([first_seconds(convs[0], paced_seconds)], modes=(True,), realtime=True)
        result["paced"] = {
            "audio_s": paced_seconds,
            "with_enrolment": paced["with_enrolment"],
            "pipeline_cpu_s_per_audio_s": paced["pipeline_cpu_s_per_audio_s"],
            "speaker_share_of_pipeline_cpu": paced["speaker_share_of_pipeline_cpu"],
        }
    return result
