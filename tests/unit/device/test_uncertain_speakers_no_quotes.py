"""When the device cannot tell the clinician's voice from the patient's, the report quotes nobody.

docs/privacy.md §4b: with `feedback.quotes` on, the report may quote the clinician's own words, and
patient words are never quoted. With no voiceprint and two voices too alike (the pipeline's
``speakers_uncertain``, which the report itself flags), "the clinician's sentences" are partly the
patient's: on the bundled consultation the first "clinician" utterance ends with the patient's
"so just been having some problems with my hearing". Quoting then lets patient words leave the
device. The real pipeline runs the bundled consultation without a voiceprint, as a site with
quotes on and a clinician who never enrolled would.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from edge_agent.asr.events import FinalTranscript, PipelineEvent
from edge_agent.audio.file_source import FileSource
from edge_agent.behaviours.classifier import BehaviourClassifier
from edge_agent.crypto import seal
from edge_agent.data import bundled
from edge_agent.device.lifecycle import VisitContext, VisitManager
from edge_agent.device.outbox import Outbox
from edge_agent.device.visit import PipelineVisitRunner, VisitPolicy
from edge_agent.feedback.proto import SCHEMA_VERSION
from edge_agent.proto.edge_agent.v1 import feedback_pb2

PSEUDONYM = "c-mfrggzdfmztwq2lk"


def _texts(fb: feedback_pb2.Feedback) -> list[str]:
    return [fb.summary] + [getattr(o, f) for o in fb.observations for f in ("moment", "clinician_quote", "alternative")]


def _said_runs(said: list[str], n: int = 3) -> set[str]:
    """Every run of ``n`` words of what was said (lower case, punctuation kept off)."""
    runs = set()
    for text in said:
        words = [w.strip(".,?!").lower() for w in text.split()]
        runs |= {" ".join(words[i : i + n]) for i in range(len(words) - n + 1)}
    return runs


def test_uncertain_speakers_leave_no_quote_in_the_report(session_with_speakers) -> None:  # type: ignore[no-untyped-def]
    said: list[str] = []

    def listen(event: PipelineEvent) -> None:
        if isinstance(event, FinalTranscript):
            said.append(event.utterance.text)

    runner = PipelineVisitRunner(session_with_speakers, BehaviourClassifier(), lambda: FileSource(bundled()),
                                 VisitPolicy(), on_event=listen)
    ctx = VisitContext("v-uncertain000000", int(time.time()), 600)
    runner.start(ctx)
    assert runner.wait_capture_end(300)
    fb = runner.stop(quotes=True)  # the site allows quotes
    ctx.wipe()
    assert fb.quality.speakers_uncertain, "precondition: no voiceprint and two alike voices (the report says so)"
    assert fb.observations, "the report has observations whose wording is checked"
    assert not [o.clinician_quote for o in fb.observations if o.clinician_quote]
    lowered = " ".join(_texts(fb)).lower()
    leaked = sorted(r for r in _said_runs(said) if r in lowered)
    assert not leaked, f"words of the visit in the report: {leaked[:5]}"


def test_the_sealing_backstop_removes_quotes_when_speakers_were_uncertain(tmp_path: Path) -> None:
    """Whatever built the report: the lifecycle holds the rule where it seals."""
    quote = "so just been having some problems with my hearing"

    class QuotingRunner:
        def start(self, ctx: VisitContext) -> None:
            pass

        def stop(self, quotes: bool = False) -> feedback_pb2.Feedback:
            fb = feedback_pb2.Feedback(schema_version=SCHEMA_VERSION, summary=f"What went well: at 0:04 you asked (\"{quote}\"). Why.")
            fb.observations.add(behaviour="open_question", at_s=4.0, moment="you asked", clinician_quote=quote,
                                alternative=f"Ask \"{quote}\" once and wait.", rationale="Why.")
            fb.quality.speakers_uncertain = True
            return fb

        def abort(self) -> None:
            pass

    priv, pub = seal.generate_keypair()

    async def visit() -> bytes:
        outbox = Outbox(tmp_path / "outbox.db")
        manager = VisitManager(QuotingRunner(), outbox)
        manager.quotes = True
        ctx = await manager.start(PSEUDONYM, seal.load_public_key(pub), 60, None, None)
        await manager.stop(ctx.visit_id, PSEUDONYM)
        items = outbox.fetch(PSEUDONYM, 0, 10)
        outbox.close()
        return seal.open_envelope(items[0].envelope, priv)

    fb = feedback_pb2.Feedback.FromString(asyncio.run(visit()))
    assert fb.observations and not fb.observations[0].clinician_quote
    assert not any(quote in t for t in _texts(fb))
