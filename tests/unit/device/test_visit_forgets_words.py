"""At stop the device forgets what was said: no cache in the process still answers for a word of the visit.

docs/design.md §3.3: transcripts live in memory for the visit only. The behaviour featuriser memoised
every word it saw (``_char_grams``, 65 536 entries) and every sentence and patient turn it compared
(``content_stems``, 4 096): the words of one visit stayed in the daemon, across visits, until
evicted. The probe asks every memoising function of the package, after a real visit through the
real pipeline has stopped, whether it still holds an entry for a word or a sentence of that visit
(a cache hit), for every argument shape a transcript string can take.
"""

from __future__ import annotations

import importlib
import pkgutil
import time
from typing import Any

import edge_agent
from edge_agent.asr.events import FinalTranscript, PipelineEvent
from edge_agent.audio.file_source import FileSource
from edge_agent.behaviours.classifier import BehaviourClassifier
from edge_agent.behaviours.features import tokens
from edge_agent.data import bundled
from edge_agent.device.lifecycle import VisitContext
from edge_agent.device.visit import PipelineVisitRunner, VisitPolicy


def _memoised() -> list[Any]:
    """Every ``functools.lru_cache``/``cache`` wrapper defined at module level in edge_agent."""
    found = []
    for info in pkgutil.walk_packages(edge_agent.__path__, "edge_agent."):
        if ".proto." in info.name or info.name.endswith(("__main__", ".cli")):
            continue
        try:
            module = importlib.import_module(info.name)
        except Exception:  # noqa: BLE001 - optional extras (gpio backends, matplotlib) are not what this probes
            continue
        for value in vars(module).values():
            if callable(value) and hasattr(value, "cache_info") and getattr(value, "__module__", "") == info.name:
                found.append(value)
    return found


def _remembers(fn: Any, arg: str) -> bool:
    before = fn.cache_info().hits
    try:
        fn(arg)
    except Exception:  # noqa: BLE001 - a cache that cannot take a string cannot hold one either
        return False
    return fn.cache_info().hits > before


def test_no_cache_remembers_a_word_of_the_visit_after_stop(session_with_speakers) -> None:  # type: ignore[no-untyped-def]
    said: list[tuple[str, str]] = []

    def listen(event: PipelineEvent) -> None:
        if isinstance(event, FinalTranscript):
            said.append((event.utterance.speaker, event.utterance.text))

    runner = PipelineVisitRunner(session_with_speakers, BehaviourClassifier(), lambda: FileSource(bundled()),
                                 VisitPolicy(), on_event=listen)
    ctx = VisitContext("v-wordstest000000", int(time.time()), 600)
    runner.start(ctx)
    assert runner.wait_capture_end(300)
    report = runner.stop()
    ctx.wipe()
    assert sum(report.label_counts.values()) >= 3, "the clinician's sentences were classified (the featuriser saw them)"
    assert {s for s, _ in said} >= {"clinician", "patient"}
    memo = _memoised()
    assert memo, "the probe found no memoised function: it probes nothing"
    probes = {text for _, text in said} | {w for _, text in said for w in tokens(text) if len(w) > 3}
    for _, text in said:  # the featuriser's own forms of each sentence (lower-cased, as features.py reads it)
        probes |= {text.lower(), text.strip(), " ".join(tokens(text))}
    remembered = sorted({f"{fn.__module__}.{fn.__name__}({p!r})" for fn in memo for p in probes if _remembers(fn, p)})
    assert not remembered, f"{len(remembered)} words or sentences of the visit still cached after stop: {remembered[:8]}"


FREED_PROBE = r"""
import gc, json, time
from edge_agent.asr.events import FinalTranscript
from edge_agent.audio.file_source import FileSource
from edge_agent.behaviours.classifier import BehaviourClassifier
from edge_agent.data import bundled
from edge_agent.device.lifecycle import VisitContext
from edge_agent.device.pipeline import PipelineConfig
from edge_agent.device.session import TranscriptionSession
from edge_agent.device.visit import PipelineVisitRunner, VisitPolicy
from tests.memory_probe import hits_in_memory

# the patient's words in the bundled visit, kept here only in pieces (a whole copy would be found)
PIECES = (("jaw", "lines"), ("with my he", "aring"))
session = TranscriptionSession.load(PipelineConfig(), speakers=True)
BehaviourClassifier().classify(["How are you today?"])  # the classifier's vocabulary is loaded before the count
before = [len(hits_in_memory((a + b).encode())) for a, b in PIECES]
heard = [False] * len(PIECES)

def listen(event):
    if isinstance(event, FinalTranscript):
        for i, (a, b) in enumerate(PIECES):
            heard[i] = heard[i] or (a + b) in event.utterance.text.lower()

runner = PipelineVisitRunner(session, BehaviourClassifier(), lambda: FileSource(bundled()), VisitPolicy(), on_event=listen)
ctx = VisitContext("v-freedwords00000", int(time.time()), 600)
runner.start(ctx)
assert runner.wait_capture_end(300)
runner.stop()
ctx.wipe()
gc.collect()
after = [len(hits_in_memory((a + b).encode())) for a, b in PIECES]
print("PROBE " + json.dumps([heard, before, after]))
"""


def test_no_word_of_a_stopped_visit_stays_in_freed_memory(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """After stop, the patient's words are nowhere in the process's memory, freed blocks included.

    The transcript was unreachable after stop (the caches test above, and nothing in ``gc``), but its
    strings, the tokenizer's decoded text and their lower-case and regex copies were freed, not
    overwritten: a scan of the daemon's memory still read "problems with my hearing" after the visit.
    Run as the unit runs the daemon (``PYTHONMALLOC=malloc``)."""
    import json
    import os
    import subprocess
    import sys

    from tests.paths import REPO_ROOT

    result = subprocess.run([sys.executable, "-c", FREED_PROBE], capture_output=True, text=True, timeout=600, cwd=REPO_ROOT,
                            env=dict(os.environ, PYTHONMALLOC="malloc", PYTHONPATH=str(REPO_ROOT), PYTHONDONTWRITEBYTECODE="1"))
    line = next((x for x in result.stdout.splitlines() if x.startswith("PROBE ")), None)
    assert line is not None, result.stderr[-3000:]
    heard, before, after = json.loads(line[len("PROBE "):])
    assert all(heard), "the recording's words were not transcribed: the probe would find nothing either way"
    assert before == [0, 0], before
    assert after == [0, 0], f"words of the stopped visit still in memory (hits per phrase: {after})"
