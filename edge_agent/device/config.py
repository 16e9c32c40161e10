"""Device configuration: one TOML file, environment overrides, documented defaults.

Precedence (later wins): field defaults < TOML file < ``EDGE_AGENT_<SECTION>__<KEY>``
environment variables. The file is ``/etc/edge-agent/config.toml`` unless a path
is given (``--config``) or ``EDGE_AGENT_CONFIG`` names one; a missing default
file means "all defaults" (a developer laptop), a missing explicit file is an error.

Sections reuse the stage dataclasses rather than mirroring them, so a default
changed in ``VadConfig`` is the device default too:

=========== ==============================================
section      dataclass
=========== ==============================================
[audio]      :class:`AudioSettings` (here)
[vad]        ``edge_agent.audio.vad.VadConfig``
[asr]        ``edge_agent.asr.backend.AsrConfig``
[pipeline]   scalar fields of ``edge_agent.device.pipeline.PipelineConfig``
[speakers]   ``edge_agent.speakers.attribution.AttributionConfig``
[server]     :class:`ServerSettings`
[outbox]     :class:`OutboxSettings`
[gpio]       :class:`GpioSettings`
[presence]   :class:`PresenceSettings`
[feedback]   :class:`FeedbackSettings`
[logging]    :class:`LoggingSettings`
[metrics]    :class:`MetricsSettings`
=========== ==============================================

Every key is documented: new dataclasses carry ``field(metadata={"doc": ...})``;
keys of dataclasses owned by other modules are documented in :data:`EXTERNAL_DOCS`
(a test fails when a field has no doc, so the table cannot silently fall behind).
Metadata may also carry ``choices``, ``min``, ``max`` and ``live`` (the key can
change on SIGHUP without a restart).
"""

from __future__ import annotations

import dataclasses
import math
import os
import tomllib
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from edge_agent.asr.backend import AsrConfig
from edge_agent.audio import SAMPLE_RATE
from edge_agent.audio.vad import ENGINES, VadConfig
from edge_agent.device.held import DEFAULT_SHUTDOWN_GRACE_S, MAX_SHUTDOWN_GRACE_S
from edge_agent.device.outbox import DAY_S, OutboxConfig
from edge_agent.device.pipeline import PipelineConfig
from edge_agent.errors import ConfigError
from edge_agent.speakers.attribution import AttributionConfig
from edge_agent.wording import shown

DEFAULT_PATH = Path("/etc/edge-agent/config.toml")
ENV_PREFIX = "EDGE_AGENT_"
ENV_CONFIG_PATH = "EDGE_AGENT_CONFIG"
GPIO_BACKENDS = ("none", "mock", "rpi", "jetson")
LOG_LEVELS = ("debug", "info", "warning", "error")
# listen addresses that mean "every address of this device" (server.host, web, metrics)
ANY_ADDRESS_HOSTS = ("", "0.0.0.0", "::")


def _doc(text: str, **extra: Any) -> dict[str, Any]:
    return {"doc": text, **extra}


# ---- new sections ---------------------------------------------------------------------


@dataclass(frozen=True)
class AudioSettings:
    device: str = field(
        default="",
        metadata=_doc("microphone: PortAudio device name, part of a name, or index; empty = system default input"),
    )
    sample_rate: int = field(
        default=SAMPLE_RATE,
        metadata=_doc("rate the pipeline runs at; the device is opened at this rate or resampled to it", choices=(SAMPLE_RATE,)),
    )
    block_ms: int = field(
        default=100,
        metadata=_doc(
            "PortAudio callback block length: each block wakes the pipeline once (30 ms blocks cost ~2x the capture "
            "CPU of 100 ms ones, measured), and adds up to one block of latency",
            min=10, max=200,
        ),
    )


@dataclass(frozen=True)
class ServerSettings:
    host: str = field(default="0.0.0.0", metadata=_doc("listen address of the mutual-TLS gRPC server"))
    port: int = field(default=50443, metadata=_doc("listen port (0 = ephemeral, tests only)", min=0, max=65535))
    room: str = field(
        default="room",
        metadata=_doc("room label shown to phones (mDNS TXT); 1-40 letters, digits, space . _ -; a room, never a person (\"Dr Patel\" is refused); must be the room in the device certificate"),
    )
    bundle: Path = field(
        default=Path("/etc/edge-agent/tls/device.pem"),
        metadata=_doc("device bundle: private key + device certificate + site CA certificate, mode 0600"),
    )
    crl: Path | None = field(
        default=Path("/etc/edge-agent/tls/crl.pem"),
        metadata=_doc(
            "revocation list from the site CA (checked on every call, reloaded when it changes; must be current and never older "
            "than the one in use); required: the daemon refuses to start without it",
            live=True,
        ),
    )
    max_visit_minutes: int = field(
        default=60, metadata=_doc("a visit stops by itself after this long", min=1, max=240, live=True)
    )
    long_silence_stop_minutes: float = field(
        default=10.0, metadata=_doc("a visit stops after this long without speech (0 = never)", min=0, max=240, live=True)
    )
    advertise: bool = field(default=True, metadata=_doc("announce the device by mDNS (_edge-agent._tcp)"))
    model_stall_seconds: float = field(
        default=120.0,
        metadata=_doc(
            "one speech-recognition or speaker-model call running longer than this is a hang: the systemd watchdog "
            "is no longer fed and the service restarts (raise it for large models on slow hardware)",
            min=5, max=3600,
        ),
    )

    def __post_init__(self) -> None:
        import re

        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9 ._-]{0,39}", self.room):
            raise ConfigError(f"server.room is {shown(self.room)}; allowed: 1-40 letters, digits, space, '.', '_' or '-'")
        from edge_agent.crypto.ca import ROOM_PERSON_HINT, names_a_person

        if names_a_person(self.room):
            raise ConfigError("server." + ROOM_PERSON_HINT.format(room=self.room))


@dataclass(frozen=True)
class OutboxSettings:
    path: Path = field(
        default=Path("/var/lib/edge-agent"),
        metadata=_doc("directory holding outbox.db (sealed feedback only); the unit's StateDirectory"),
    )
    retention_days: float = field(
        default=14.0, metadata=_doc("undelivered reports are deleted this long after they were queued (a changed value applies to the reports already queued too)", min=0.01, max=365, live=True)
    )
    max_mb: int = field(default=64, metadata=_doc("outbox size limit; new reports are refused beyond it", min=1, max=65536))
    shutdown_grace_s: float = field(
        default=DEFAULT_SHUTDOWN_GRACE_S,
        metadata=_doc(
            "at stop, sealed reports the outbox refuses (disk full) are retried every second for this long, so space IT "
            "frees meanwhile keeps them; then they are lost: one LOST line, a reports-lost note for doctor, exit status 74. "
            "Kept under the unit's TimeoutStopSec (90 s), which also covers finishing the visit",
            min=0, max=MAX_SHUTDOWN_GRACE_S, live=True,
        ),
    )

    def outbox_config(self) -> OutboxConfig:
        """The server's :class:`OutboxConfig` for these settings."""
        return replace(OutboxConfig(), retention_s=self.retention_days * DAY_S, max_bytes=self.max_mb * 1024 * 1024)

    @property
    def db_path(self) -> Path:
        return self.path / "outbox.db"


@dataclass(frozen=True)
class GpioSettings:
    backend: str = field(
        default="none",
        metadata=_doc("pin driver: none (no button/LED), mock (tests), rpi (Raspberry Pi), jetson (Jetson.GPIO)", choices=GPIO_BACKENDS),
    )
    button_pin: int = field(default=17, metadata=_doc("BCM number of the start/stop push button (to ground)", min=0, max=63))
    led_pin: int = field(default=27, metadata=_doc("BCM number of the capture LED (lit exactly while audio is read)", min=0, max=63))
    red_led_pin: int | None = field(
        default=22, metadata=_doc("BCM number of the red LED (refused press, microphone lost); empty = none", min=0, max=63)
    )
    claim_window_s: float = field(
        default=300.0,
        metadata=_doc("a button press starts a visit only for a phone that claimed the room this recently", min=5, max=3600, live=True),
    )

    def __post_init__(self) -> None:
        pins = [p for p in (self.button_pin, self.led_pin, self.red_led_pin) if p is not None]
        if len(set(pins)) != len(pins):
            raise ConfigError(f"gpio pins must differ; button_pin, led_pin, red_led_pin are {pins}")


@dataclass(frozen=True)
class PresenceSettings:
    code_secret: Path | None = field(
        default=Path("/etc/edge-agent/tls/room-code.key"),
        metadata=_doc(
            "secret of the room code a phone must send to start a visit (made by 'edge-agent provision', 0600); "
            "empty = no room code: visits start only by claim + room button"
        ),
    )
    code_step_s: int = field(
        default=28 * 86400,
        metadata=_doc(
            "seconds each room code is valid: 60 for a device display, days for a printed label "
            "('edge-agent device room-code' prints the current and next code)",
            min=30, max=90 * 86400,
        ),
    )
    allowed_clinicians: Path | None = field(
        default=None,
        metadata=_doc("allow-list file: clinician ids (s-... or c-...), one a line, who may start or claim visits here; empty = every clinician. After editing the file, `systemctl reload edge-agent` re-reads it", live=True),
    )


@dataclass(frozen=True)
class FeedbackSettings:
    quotes: bool = field(
        default=False,
        metadata=_doc("reports may quote the clinician's words; off = the moment is paraphrased and no verbatim words leave the device", live=True),
    )


@dataclass(frozen=True)
class LoggingSettings:
    level: str = field(default="info", metadata=_doc("log level", choices=LOG_LEVELS, live=True))
    json: bool = field(default=False, metadata=_doc("JSON lines instead of journald-style plain lines", live=True))


@dataclass(frozen=True)
class MetricsSettings:
    enabled: bool = field(default=False, metadata=_doc("serve Prometheus text metrics on 127.0.0.1 (numbers only, never ids or text; published on the publish_s clock)"))
    port: int = field(default=9464, metadata=_doc("loopback port of the metrics endpoint", min=1, max=65535))
    publish_s: int = field(
        default=86400,
        metadata=_doc(
            "the endpoint serves the counts frozen at the last multiple of this many epoch seconds, never live values "
            "(default: daily, at 00:00 UTC); below 3600 the published numbers reveal the room's schedule at that "
            "resolution: for test rigs only", min=1, max=604800,
        ),
    )


@dataclass(frozen=True)
class PopulationSettings:
    enabled: bool = field(default=False, metadata=_doc("add a de-identified contribution record per visit (docs/privacy.md)"))
    service_line: str = field(
        default="general-practice", metadata=_doc("department the room belongs to: 2-32 lowercase letters, digits or '-'")
    )
    period_key: Path = field(
        default=Path("/etc/edge-agent/population/period.key"),
        metadata=_doc("the site's rotating period key (same file on every room device; never on the aggregator)"),
    )
    aggregator_public_key: Path = field(
        default=Path("/etc/edge-agent/population/aggregator.pub"),
        metadata=_doc("the aggregator's X25519 public key; records are sealed to it"),
    )
    aggregator_address: str = field(
        default="", metadata=_doc("HOST:PORT of the aggregator; empty = records wait in the outbox")
    )
    client_bundle: Path = field(
        default=Path("/etc/edge-agent/population/contributor.pem"),
        metadata=_doc("client-only certificate bundle for delivering records to the aggregator"),
    )
    forward_interval_minutes: float = field(
        default=1440.0, metadata=_doc("how often queued records are sent to the aggregator", min=1, max=10080)
    )

    def __post_init__(self) -> None:
        import re

        from edge_agent.crypto.ca import names_a_person

        if not re.fullmatch(r"[a-z0-9-]{2,32}", self.service_line):
            raise ConfigError(
                f"population.service_line is {shown(self.service_line)}; allowed: 2-32 lowercase letters, digits or '-' (a department, never a person)"
            )
        if names_a_person(self.service_line):  # it is in every record and every released cell's name
            raise ConfigError(
                f"population.service_line {self.service_line!r} looks like a person's name; name the department (e.g. 'cardiology'), "
                "never a clinician: quality & safety see it beside every released figure"
            )


@dataclass(frozen=True)
class WebSettings:
    enabled: bool = field(default=False, metadata=_doc("serve the phone web app's browser endpoint: gRPC-Web over HTTPS on a second port (docs/phone.md)"))
    port: int = field(default=50444, metadata=_doc("port of the browser endpoint (listens on server.host)", min=1, max=65535))
    allowed_origin: str = field(
        default="", metadata=_doc("the phone web app's https origin, exactly (e.g. https://phones.clinic.example:8443): the only page allowed to call the device")
    )
    session_minutes: float = field(default=10.0, metadata=_doc("a browser sign-in lasts this long; the app signs in again by itself", min=1, max=60))


# ---- the whole configuration ------------------------------------------------------------


@dataclass(frozen=True)
class EdgeConfig:
    """Everything a device reads from its config file. ``pipeline`` embeds [vad] and [asr]."""

    audio: AudioSettings = field(default_factory=AudioSettings)
    pipeline: PipelineConfig = field(default_factory=PipelineConfig)
    speakers: AttributionConfig = field(default_factory=AttributionConfig)
    server: ServerSettings = field(default_factory=ServerSettings)
    outbox: OutboxSettings = field(default_factory=OutboxSettings)
    gpio: GpioSettings = field(default_factory=GpioSettings)
    presence: PresenceSettings = field(default_factory=PresenceSettings)
    feedback: FeedbackSettings = field(default_factory=FeedbackSettings)
    logging: LoggingSettings = field(default_factory=LoggingSettings)
    metrics: MetricsSettings = field(default_factory=MetricsSettings)
    population: PopulationSettings = field(default_factory=PopulationSettings)
    web: WebSettings = field(default_factory=WebSettings)
    source: Path | None = None  # the file that was read, if any

    def __post_init__(self) -> None:
        # While no one speaks the VAD holds max(pre-roll, onset window) + 1 frames of the frame pool. Holding all
        # of it, a recording's reader waited forever for a free frame (the visit hung, no text) and a microphone's
        # frames were all dropped. Checked here, across sections, so a SIGHUP raising the live pre-roll past the
        # running (restart-only) pool is refused as the file would be. A tenth of a second stays for capture in flight.
        vad, pool_s = self.pipeline.vad, self.pipeline.frame_pool_s
        pool = max(8, int(pool_s * 1000 / vad.frame_ms))  # as AudioPools sizes it
        held = max(vad.frames_for(vad.preroll_ms) if vad.preroll_ms else 0, vad.frames_for(vad.onset_ms)) + 1
        if held + vad.frames_for(100) > pool:
            raise ConfigError(
                f"pipeline.frame_pool_s ({pool_s:g} s) must hold the audio the VAD keeps while waiting for speech, "
                f"max(vad.preroll_ms {vad.preroll_ms}, vad.onset_ms {vad.onset_ms}) + 0.1 s for capture; "
                f"raise pipeline.frame_pool_s to {(held + vad.frames_for(100)) * vad.frame_ms / 1000:g} s or lower those keys"
            )

    @property
    def vad(self) -> VadConfig:
        return self.pipeline.vad

    @property
    def asr(self) -> AsrConfig:
        return self.pipeline.asr


@dataclass(frozen=True)
class Section:
    name: str
    cls: type
    doc: str


SECTIONS: tuple[Section, ...] = (
    Section("audio", AudioSettings, "Microphone capture."),
    Section(
        "vad", VadConfig,
        "Voice-activity segmentation: webrtcvad (default), Silero VAD v6, or both (`engine`). Measured side by side on "
        "real voices in docs/realvoice.md 8: close-talk, Silero's finals come sooner but same-sex attribution was lower; "
        "in a room its segments stay open through babble, and its thresholds trade far-field words (lower "
        "`silero_neg_threshold`) against noise opening segments (higher). 'hybrid' starts segments as webrtcvad does and "
        "ends them when webrtcvad goes on hearing sound that Silero does not call voice (a noisy pause).",
    ),
    Section("asr", AsrConfig, "Speech recognition (faster-whisper / CTranslate2)."),
    Section("pipeline", PipelineConfig, "Buffers and CPU budget between capture and ASR."),
    Section("speakers", AttributionConfig, "Clinician / patient attribution from voice embeddings."),
    Section("server", ServerSettings, "The mutual-TLS gRPC server and visit limits."),
    Section("outbox", OutboxSettings, "Sealed feedback waiting for the clinician's phone."),
    Section("gpio", GpioSettings, "Room button and LEDs."),
    Section("presence", PresenceSettings, "Proof the clinician is in the room before capture starts (docs/security.md)."),
    Section("feedback", FeedbackSettings, "What the sealed report may contain."),
    Section("logging", LoggingSettings, "Log output (journald or JSON lines; never text or ids)."),
    Section("metrics", MetricsSettings, "Prometheus text endpoint on loopback."),
    Section("population", PopulationSettings, "De-identified contribution records for Quality & Safety."),
    Section("web", WebSettings, "The browser endpoint for the phone web app (gRPC-Web, session sign-in)."),
)
SECTION_BY_NAME = {s.name: s for s in SECTIONS}

# Docs and limits for keys of dataclasses owned by other modules (their files carry
# plain comments; validation they lack is added here via min/max/choices).
EXTERNAL_DOCS: dict[str, dict[str, Any]] = {
    "vad.engine": _doc(
        "frame classifier: 'webrtc' (webrtcvad), 'silero' (Silero VAD v6, the ONNX model inside the faster-whisper "
        "wheel) or 'hybrid' (webrtcvad starts a segment, Silero ends noisy pauses; both models); a reload to 'silero' "
        "or 'hybrid' opens the Silero model first and is refused if it cannot be loaded",
        choices=ENGINES, live=True,
    ),
    "vad.aggressiveness": _doc("webrtcvad mode: 0 permissive .. 3 strict (engine 'webrtc')", choices=(0, 1, 2, 3), live=True),
    "vad.silero_threshold": _doc(
        "engine 'silero': speech probability at which a frame starts speech (engine 'hybrid': unused, webrtcvad starts)",
        min=0.1, max=0.95, live=True,
    ),
    "vad.silero_neg_threshold": _doc(
        "engine 'silero': once in speech, frames stay speech while their probability is at least this (at most "
        "silero_threshold); engine 'hybrid': below it, Silero hears no voice",
        min=0.05, max=0.5, live=True,
    ),
    "vad.silero_hangover_ms": _doc(
        "engine 'silero': silence that closes a segment (replaces hangover_ms; candidate_ms is capped at it); engine "
        "'hybrid': how long webrtcvad may hear sound that Silero does not call voice before the segment closes",
        min=30, max=5000, live=True,
    ),
    "vad.frame_ms": _doc("VAD frame length in ms", choices=(10, 20, 30)),
    "vad.preroll_ms": _doc("audio kept before the detected speech onset", min=0, max=2000, live=True),
    "vad.onset_ms": _doc("window in which most frames must be voiced to open a segment", min=0, max=2000, live=True),
    "vad.hangover_ms": _doc("silence that closes a segment (engines 'webrtc' and 'hybrid')", min=30, max=5000, live=True),
    "vad.tail_ms": _doc("audio kept after the last voiced frame (at most hangover_ms)", min=0, max=5000, live=True),
    "vad.candidate_ms": _doc("silence after which the final's audio is decoded ahead (between tail_ms and hangover_ms)", min=0, max=5000, live=True),
    "vad.min_speech_ms": _doc("voiced time below which a segment is noise, not speech", min=0, max=5000, live=True),
    "vad.max_segment_s": _doc("longest segment; longer speech is split at a quiet frame (2 × split_search_s .. 28 s)"),
    "vad.split_search_s": _doc("how far back from the limit to look for a quiet split point (one frame .. half of max_segment_s)"),
    "vad.partial_interval_ms": _doc("how often a growing segment is re-decoded for a live partial (each re-decode costs CPU); at most pipeline.partial_max_gap_s", min=100, max=10000, live=True),
    "asr.model": _doc("Whisper model: 'tiny.en' (bundled) or a CTranslate2 Whisper model directory"),
    "asr.device": _doc("compute device: cpu, cuda (Jetson) or auto", choices=("cpu", "cuda", "auto")),
    "asr.compute_type": _doc("CTranslate2 compute type (int8 on CPU, float16 on CUDA)"),
    "asr.cpu_threads": _doc("CPU threads for ASR (1 measured best for tiny.en on 2 cores)", min=1, max=64),
    "asr.beam_size": _doc("beam size for partial decodes", min=1, max=10),
    "asr.final_beam_size": _doc("beam size for final decodes", min=1, max=10),
    "asr.context_tokens": _doc("tokens of previous finals given to a final as context", min=0, max=224),
    "asr.language": _doc("language code of the speech"),
    "asr.pad_s": _doc("silence appended to each final's decode window (stops short windows looping)", min=0, max=30),
    "asr.partial_pad_s": _doc("silence appended to each partial's decode window (partials only feed the live view)", min=0, max=30),
    "asr.no_speech_threshold": _doc("Whisper no-speech probability above which a window is silence", min=0, max=1),
    "asr.logprob_threshold": _doc("average log-probability below which a decode is rejected", max=0),
    "asr.compression_ratio_threshold": _doc("gzip compression ratio above which a decode is a repetition loop", min=1),
    "pipeline.frame_pool_s": _doc("raw int16 audio in flight between capture and VAD (fixed pool)", min=0.5, max=30),
    "pipeline.segment_buffers": _doc(
        "closed speech segments whose features wait for the decoder (a fixed pool of this many stores plus two; raw "
        "audio is not kept for them: it becomes features as it arrives); a live source drops speech that finds no store",
        min=2, max=64,
    ),
    "pipeline.partials": _doc("decode live partial transcripts (finals are always decoded)"),
    "pipeline.partial_max_gap_s": _doc("a live partial at least this often (seconds of new speech), whatever the CPU budget", min=0.5, max=10),
    "pipeline.partial_min_step_s": _doc("extra partials at most this often (seconds of new speech), within the CPU budget", min=0.25, max=10),
    "pipeline.partial_cpu_share": _doc("average share of one core the extra partial re-decodes may use", min=0, max=4),
    "pipeline.partial_cpu_burst_s": _doc("CPU seconds of extra partial decoding that may be spent at once", min=0, max=60),
    "pipeline.partial_window_s": _doc(
        "most seconds of audio one partial decodes: past it, a partial decodes a tail from a word or sentence boundary"
        " of the previous partial (the text before it kept) so its cost stays bounded; 0 = the whole window since the"
        " last committed sentence", min=0, max=30,
    ),
    "speakers.threshold": _doc("cosine to the clinician voiceprint above which a voice is the clinician", min=-1, max=1, live=True),
    "speakers.anchor_seconds": _doc("weight of the voiceprint in the clustering, in seconds of speech", min=0, live=True),
    "speakers.same_voice_cos": _doc("two cluster centroids closer than this are one voice", min=-1, max=1, live=True),
    "speakers.uncertain_cos": _doc(
        "no voiceprint: the visit's two voices this close (centroid cosine) are reported as hard to tell apart", min=-1, max=1, live=True
    ),
    "speakers.one_voice_spread": _doc(
        "enrolled: both voices this close in mean cosine to the voiceprint (and above threshold) are the clinician alone",
        min=0, max=2, live=True,
    ),
    "speakers.room_floor": _doc(
        "enrolled, no segment at threshold: the voice nearer the voiceprint must average this (cosine) for the voiceprint to"
        " count as heard through a room microphone; otherwise the report's labels are decided without it and say so",
        min=-1, max=1, live=True,
    ),
    "speakers.room_lean": _doc(
        "enrolled, no segment at threshold: a voiceprint this much nearer (cosine) to one of the visit's two voices than to"
        " the other is heard through the room even below room_floor (that voice is the clinician)",
        min=0, max=2, live=True,
    ),
    "speakers.heard_min_s": _doc(
        "enrolled: the voiceprint counts as heard in this visit's channel once a part this long (seconds) reaches threshold",
        min=0, live=True,
    ),
    "speakers.edge_min_s": _doc("shortest part of the other voice split off at a segment's start or end (seconds of words)", min=0, live=True),
    "speakers.edge_max_s": _doc("longest part tested at a segment's start or end (0 = no edge test)", min=0, max=10, live=True),
    "speakers.edge_margin": _doc(
        "an edge part is the other voice when its cosine to it exceeds its cosine to the neighbouring part's voice by this",
        min=0, max=2, live=True,
    ),
    "speakers.edge_lean": _doc(
        "... and the neighbouring part sides with its own voice by more than this (one voice split in two does not)",
        min=0, max=2, live=True,
    ),
    "speakers.other_cos": _doc("a segment below this to both centroids is a third voice", min=-1, max=1, live=True),
    "speakers.other_min_segments": _doc("history needed before 'other' is considered", min=0, live=True),
    "speakers.min_embed_s": _doc("shorter segments get no embedding", min=0, live=True),
    "speakers.min_cluster_s": _doc("shorter segments are labelled by the clusters but do not shape them", min=0, live=True),
    "speakers.max_restarts": _doc("k-means restarts per re-clustering (CPU per segment grows with it)", min=1, max=100, live=True),
    "speakers.kmeans_iters": _doc("k-means iterations per restart (CPU per segment grows with it)", min=1, max=100, live=True),
    "speakers.split_min_s": _doc("segments shorter than this are not split at speaker changes", min=0, live=True),
    "speakers.split_cos": _doc("left/right window similarity below which a segment is split", min=-1, max=1, live=True),
    "speakers.split_step_s": _doc("step of the change-point search", min=0.05, live=True),
    "speakers.coarse_every": _doc(
        "first pass embeds every n-th window of that grid; the rest only around a possible speaker change (1 = all)",
        min=1, max=4, live=True,
    ),
    "speakers.refine_margin": _doc(
        "log-likelihood both neighbouring coarse windows must exceed, on the same side, to skip the windows between",
        min=0, live=True,
    ),
    "speakers.viterbi_scale": _doc("change-point search: window score (cosine difference) to log-likelihood ratio", min=0, live=True),
    "speakers.separation_ref": _doc(
        "enrolled, voiceprint heard, the visit's two voices closer than this (1 - cosine of their centroids): the"
        " open segment's watcher scores windows against the voiceprint and the visit's midpoint, scaled up by"
        " separation_ref / separation (0 = off)", min=0, max=2, live=True,
    ),
    "speakers.switch_penalty": _doc("log-likelihood a speaker change must win by", min=0, live=True),
    "speakers.window_threshold": _doc("enrolled, no patient voice yet: window cosine to the voiceprint for the clinician", min=-1, max=1, live=True),
    "speakers.relative_step": _doc(
        "enrolled, no patient voice yet, every window above window_threshold: a step of at least this much in the"
        " windows' mean cosine to the voiceprint within a segment is a speaker change (voices the absolute scale"
        " cannot separate; 0 = off)", min=0, max=2, live=True,
    ),
    "speakers.relative_side_s": _doc("the relative step counts only with this much audio in the windows on each side of it", min=0, live=True),
    "speakers.word_gap_bonus": _doc(
        "placing a speaker change at a word boundary: log-likelihood per second of pause between the two words",
        min=0, live=True,
    ),
    "speakers.word_gap_cap_s": _doc("pauses count for word_gap_bonus up to this many seconds", min=0, live=True),
    "speakers.min_part_s": _doc("no part of a split segment shorter than this", min=0, live=True),
    "speakers.min_word_part_s": _doc("no part shorter than this where word times place the change (one short word)", min=0, live=True),
    "speakers.word_reach_s": _doc("word boundaries this close to a change between windows are candidates for it", min=0, live=True),
    "speakers.word_distance_cost": _doc("log-likelihood per second a candidate word boundary lies from the window change", min=0, live=True),
    "speakers.rename_margin": _doc(
        "without enrolment: live speaker names change only when the words' evidence against them exceeds this "
        "(log-odds; the report's names are decided once with the whole visit)", min=0, live=True,
    ),
    "speakers.vp_rename_margin": _doc(
        "enrolled, but no segment of the visit reaches the threshold (a room microphone): the voiceprint names the "
        "visit's own two voices, and live names change when the other naming is nearer it on average by this much (cosine)",
        min=0, max=2, live=True,
    ),
    "speakers.open_change_windows": _doc(
        "close a still-open segment where another voice takes over once this many consecutive 1.6 s windows side "
        "clearly with it (0: never; finals then wait for a pause)", min=0, max=10, live=True,
    ),
    "speakers.snap_s": _doc("change points move to the quietest 20 ms within this reach", min=0, live=True),
    "speakers.word_snap_s": _doc("then to the nearest word start within this reach", min=0, live=True),
    "speakers.anchored_init": _doc("how the voiceprint-anchored two-means starts", choices=("threshold+clusters", "threshold", "clusters"), live=True),
    "speakers.enrolled_method": _doc("attribution with a voiceprint: anchored clustering or plain clusters", choices=("anchored", "clusters"), live=True),
    "speakers.text_weight": _doc("enrolled: weight of the role classifier's log-odds against the voice score", min=0, live=True),
    "speakers.enrolled_bias": _doc("cos(clinician) - cos(patient) above this means clinician", min=-2, max=2, live=True),
    "speakers.role_logit_clip": _doc("clip of the language role model's log-odds per segment", min=0, live=True),
}


# ---- field introspection ------------------------------------------------------------------


@dataclass(frozen=True)
class KeySpec:
    """One configurable key: where it lives, its type, default and documentation."""

    section: str
    name: str
    type: Any
    default: Any
    doc: str
    choices: tuple[Any, ...] | None = None
    min: float | None = None
    max: float | None = None
    live: bool = False

    @property
    def key(self) -> str:
        return f"{self.section}.{self.name}"

    @property
    def optional(self) -> bool:
        return type(None) in typing.get_args(self.type)

    @property
    def base_type(self) -> type:
        args = [a for a in typing.get_args(self.type) if a is not type(None)]
        return args[0] if args else self.type


def _scalar(tp: Any) -> bool:
    base = [a for a in typing.get_args(tp) if a is not type(None)] or [tp]
    return len(base) == 1 and base[0] in (bool, int, float, str, Path)


def keys(section: str) -> list[KeySpec]:
    """The keys of one section, in declaration order (non-scalar fields such as pipeline.vad excluded)."""
    sec = SECTION_BY_NAME[section]
    hints = typing.get_type_hints(sec.cls)
    specs = []
    for f in fields(sec.cls):
        tp = hints[f.name]
        if not _scalar(tp) or f.name.startswith("_"):
            continue
        meta = dict(f.metadata) or EXTERNAL_DOCS.get(f"{section}.{f.name}", {})
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc,operator]
        specs.append(
            KeySpec(
                section, f.name, tp, default, meta.get("doc", ""), meta.get("choices"), meta.get("min"), meta.get("max"),
                bool(meta.get("live", False)),
            )
        )
    return specs


def all_keys() -> list[KeySpec]:
    return [k for s in SECTIONS for k in keys(s.name)]


# ---- value conversion -----------------------------------------------------------------------

_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")


def _type_name(spec: KeySpec) -> str:
    names = {bool: "true or false", int: "an integer", float: "a number", str: "a string", Path: "a file path"}
    name = names[spec.base_type]
    return name + (" (or empty for none)" if spec.optional else "")


def _allowed(spec: KeySpec) -> str:
    if spec.choices:
        return "allowed values: " + ", ".join(str(c) for c in spec.choices)
    lo = "" if spec.min is None else f"{spec.min:g}"
    hi = "" if spec.max is None else f"{spec.max:g}"
    rng = f" in {lo}..{hi}" if (lo or hi) else ""
    return f"allowed: {_type_name(spec)}{rng}"


def _bad(spec: KeySpec, value: Any, origin: str) -> ConfigError:
    return ConfigError(f"{spec.key} is {shown(value)}{origin}; {_allowed(spec)}")


def convert(spec: KeySpec, value: Any, origin: str = "") -> Any:
    """Check and convert a TOML value (or an env string) to the key's type."""
    from_env = isinstance(value, str) and bool(origin)
    if spec.optional and value == "":
        return None
    base = spec.base_type
    try:
        if base is bool:
            if isinstance(value, bool):
                out: Any = value
            elif from_env and value.strip().lower() in _TRUE + _FALSE:
                out = value.strip().lower() in _TRUE
            else:
                raise ValueError
        elif base is int:
            if isinstance(value, bool):
                raise ValueError
            if isinstance(value, int):
                out = value
            elif from_env:
                out = int(value.strip(), 10)
            else:
                raise ValueError
        elif base is float:
            if isinstance(value, bool):
                raise ValueError
            if isinstance(value, int | float):
                out = float(value)
            elif from_env:
                out = float(value.strip())
            else:
                raise ValueError
            if not math.isfinite(out):
                raise ValueError
        elif base is str:
            if not isinstance(value, str):
                raise ValueError
            out = value
        elif base is Path:
            if not isinstance(value, str) or "\x00" in value:
                raise ValueError
            out = Path(value)
        else:  # pragma: no cover - _scalar() admits only the types above
            raise ValueError
    except ValueError:
        raise _bad(spec, value, origin) from None
    if spec.choices is not None and out not in spec.choices:
        raise _bad(spec, value, origin)
    if isinstance(out, int | float) and not isinstance(out, bool):
        if (spec.min is not None and out < spec.min) or (spec.max is not None and out > spec.max):
            raise _bad(spec, value, origin)
    return out


# ---- loading ------------------------------------------------------------------------------------


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(f"config file {path} not found; create it or omit --config to use the defaults") from None
    except PermissionError:
        raise ConfigError(f"config file {path} is not readable by this user; fix its permissions") from None
    except IsADirectoryError:
        raise ConfigError(f"config path {path} is a directory; give the config.toml file") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML ({exc})") from None
    except UnicodeDecodeError as exc:
        # TOML is UTF-8; a file saved in Latin-1 (or with binary junk) must not be an "internal error"
        line = data.count(b"\n", 0, exc.start) + 1 if (data := _raw(path)) is not None else 0
        where = f" at line {line}" if line else ""
        raise ConfigError(f"config file {path} is not UTF-8 text (byte 0x{exc.object[exc.start]:02x}{where}); "
                          "save it as UTF-8") from None
    except OSError as exc:
        raise ConfigError(f"config file {path} cannot be read ({exc.strerror}); check the disk and the path") from None


def _raw(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except OSError:
        return None


def _env_overrides(env: Mapping[str, str]) -> dict[str, dict[str, str]]:
    """``EDGE_AGENT_<SECTION>__<KEY>`` variables; other EDGE_AGENT_* names (no ``__``) are not config keys."""
    out: dict[str, dict[str, str]] = {}
    for name, value in env.items():
        if not name.startswith(ENV_PREFIX) or "__" not in name[len(ENV_PREFIX) :]:
            continue
        section, _, key = name[len(ENV_PREFIX) :].lower().partition("__")
        out.setdefault(section, {})[key] = value
    return out


def _check_names(raw: Mapping[str, Any], origin: str) -> None:
    for section, table in raw.items():
        if section not in SECTION_BY_NAME:
            known = ", ".join(SECTION_BY_NAME)
            raise ConfigError(f"unknown config section [{section}]{origin}; allowed sections: {known}")
        if not isinstance(table, Mapping):
            raise ConfigError(f"[{section}]{origin} must be a table of keys, not a single value")
        names = {k.name for k in keys(section)}
        for key in table:
            if key not in names:
                raise ConfigError(f"unknown config key {section}.{key}{origin}; allowed keys in [{section}]: {', '.join(sorted(names))}")


def _build(cls: type, spec_values: dict[str, Any], base: Any) -> Any:
    # the dataclass's own __post_init__ runs here and raises ConfigError for cross-field rules
    return replace(base, **spec_values)


def config_path(path: str | Path | None, env: Mapping[str, str]) -> tuple[Path, bool]:
    """The file to read and whether it was asked for explicitly."""
    if path is not None:
        return Path(path), True
    if env.get(ENV_CONFIG_PATH):
        return Path(env[ENV_CONFIG_PATH]), True
    return DEFAULT_PATH, False


def load_config(path: str | Path | None = None, env: Mapping[str, str] = os.environ) -> EdgeConfig:
    """Defaults < TOML file < environment. Raises :class:`ConfigError` naming the key and what is allowed."""
    file, explicit = config_path(path, env)
    raw: dict[str, Any] = {}
    source: Path | None = None
    if explicit or file.exists():
        raw = _read_toml(file)
        source = file
    return parse_config(raw, env, source)


def parse_config(raw: Mapping[str, Any], env: Mapping[str, str] = {}, source: Path | None = None) -> EdgeConfig:
    """Build and validate a config from parsed TOML (``raw``) plus environment overrides."""
    _check_names(raw, f" in {source}" if source else "")
    overrides = _env_overrides(env)
    _check_names(overrides, " (environment)")
    values: dict[str, dict[str, Any]] = {}
    for section in SECTIONS:
        specs = {k.name: k for k in keys(section.name)}
        vals: dict[str, Any] = {}
        for key, value in raw.get(section.name, {}).items():
            vals[key] = convert(specs[key], value)
        for key, value in overrides.get(section.name, {}).items():
            env_name = f"{ENV_PREFIX}{section.name.upper()}__{key.upper()}"
            vals[key] = convert(specs[key], value, f" (from {env_name})")
        values[section.name] = vals
    vad = _build(VadConfig, values["vad"], VadConfig())
    asr = _build(AsrConfig, values["asr"], AsrConfig())
    pipeline = _build(PipelineConfig, {**values["pipeline"], "vad": vad, "asr": asr}, PipelineConfig())
    return EdgeConfig(
        audio=_build(AudioSettings, values["audio"], AudioSettings()),
        pipeline=pipeline,
        speakers=_build(AttributionConfig, values["speakers"], AttributionConfig()),
        server=_build(ServerSettings, values["server"], ServerSettings()),
        outbox=_build(OutboxSettings, values["outbox"], OutboxSettings()),
        gpio=_build(GpioSettings, values["gpio"], GpioSettings()),
        presence=_build(PresenceSettings, values["presence"], PresenceSettings()),
        feedback=_build(FeedbackSettings, values["feedback"], FeedbackSettings()),
        logging=_build(LoggingSettings, values["logging"], LoggingSettings()),
        metrics=_build(MetricsSettings, values["metrics"], MetricsSettings()),
        population=_build(PopulationSettings, values["population"], PopulationSettings()),
        web=_build(WebSettings, values["web"], WebSettings()),
        source=source,
    )


def section_values(cfg: EdgeConfig, section: str) -> dict[str, Any]:
    """Current values of one section's keys (e.g. for a diff or for rendering)."""
    obj: Any = getattr(cfg.pipeline, section) if section in ("vad", "asr") else getattr(cfg, section)
    return {k.name: getattr(obj, k.name) for k in keys(section)}


def changed_keys(old: EdgeConfig, new: EdgeConfig) -> list[KeySpec]:
    """Keys whose value differs between two configurations (SIGHUP reload)."""
    out: list[KeySpec] = []
    for section in SECTIONS:
        a, b = section_values(old, section.name), section_values(new, section.name)
        out.extend(k for k in keys(section.name) if a[k.name] != b[k.name])
    return out
