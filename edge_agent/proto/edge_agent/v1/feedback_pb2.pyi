from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Speaker(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SPEAKER_UNSPECIFIED: _ClassVar[Speaker]
    SPEAKER_CLINICIAN: _ClassVar[Speaker]
    SPEAKER_PATIENT: _ClassVar[Speaker]
    SPEAKER_OTHER: _ClassVar[Speaker]
SPEAKER_UNSPECIFIED: Speaker
SPEAKER_CLINICIAN: Speaker
SPEAKER_PATIENT: Speaker
SPEAKER_OTHER: Speaker

class Observation(_message.Message):
    __slots__ = ("behaviour", "at_s", "moment", "clinician_quote", "alternative", "rationale")
    BEHAVIOUR_FIELD_NUMBER: _ClassVar[int]
    AT_S_FIELD_NUMBER: _ClassVar[int]
    MOMENT_FIELD_NUMBER: _ClassVar[int]
    CLINICIAN_QUOTE_FIELD_NUMBER: _ClassVar[int]
    ALTERNATIVE_FIELD_NUMBER: _ClassVar[int]
    RATIONALE_FIELD_NUMBER: _ClassVar[int]
    behaviour: str
    at_s: float
    moment: str
    clinician_quote: str
    alternative: str
    rationale: str
    def __init__(self, behaviour: _Optional[str] = ..., at_s: _Optional[float] = ..., moment: _Optional[str] = ..., clinician_quote: _Optional[str] = ..., alternative: _Optional[str] = ..., rationale: _Optional[str] = ...) -> None: ...

class Turn(_message.Message):
    __slots__ = ("speaker", "start_s", "end_s")
    SPEAKER_FIELD_NUMBER: _ClassVar[int]
    START_S_FIELD_NUMBER: _ClassVar[int]
    END_S_FIELD_NUMBER: _ClassVar[int]
    speaker: Speaker
    start_s: float
    end_s: float
    def __init__(self, speaker: _Optional[_Union[Speaker, str]] = ..., start_s: _Optional[float] = ..., end_s: _Optional[float] = ...) -> None: ...

class TimelineMark(_message.Message):
    __slots__ = ("kind", "at_s")
    KIND_FIELD_NUMBER: _ClassVar[int]
    AT_S_FIELD_NUMBER: _ClassVar[int]
    kind: str
    at_s: float
    def __init__(self, kind: _Optional[str] = ..., at_s: _Optional[float] = ...) -> None: ...

class AudioQuality(_message.Message):
    __slots__ = ("audio_s", "speech_lost_s", "dropped_segments", "failed_segments", "dropped_frames", "capture_interruptions", "speakers_uncertain", "voiceprint_unheard")
    AUDIO_S_FIELD_NUMBER: _ClassVar[int]
    SPEECH_LOST_S_FIELD_NUMBER: _ClassVar[int]
    DROPPED_SEGMENTS_FIELD_NUMBER: _ClassVar[int]
    FAILED_SEGMENTS_FIELD_NUMBER: _ClassVar[int]
    DROPPED_FRAMES_FIELD_NUMBER: _ClassVar[int]
    CAPTURE_INTERRUPTIONS_FIELD_NUMBER: _ClassVar[int]
    SPEAKERS_UNCERTAIN_FIELD_NUMBER: _ClassVar[int]
    VOICEPRINT_UNHEARD_FIELD_NUMBER: _ClassVar[int]
    audio_s: float
    speech_lost_s: float
    dropped_segments: int
    failed_segments: int
    dropped_frames: int
    capture_interruptions: int
    speakers_uncertain: bool
    voiceprint_unheard: bool
    def __init__(self, audio_s: _Optional[float] = ..., speech_lost_s: _Optional[float] = ..., dropped_segments: _Optional[int] = ..., failed_segments: _Optional[int] = ..., dropped_frames: _Optional[int] = ..., capture_interruptions: _Optional[int] = ..., speakers_uncertain: _Optional[bool] = ..., voiceprint_unheard: _Optional[bool] = ...) -> None: ...

class Feedback(_message.Message):
    __slots__ = ("schema_version", "visit_id", "duration_s", "timing", "label_counts", "observations", "summary", "started_unix_s", "contribution", "timeline", "marks", "quality")
    class TimingEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    class LabelCountsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    SCHEMA_VERSION_FIELD_NUMBER: _ClassVar[int]
    VISIT_ID_FIELD_NUMBER: _ClassVar[int]
    DURATION_S_FIELD_NUMBER: _ClassVar[int]
    TIMING_FIELD_NUMBER: _ClassVar[int]
    LABEL_COUNTS_FIELD_NUMBER: _ClassVar[int]
    OBSERVATIONS_FIELD_NUMBER: _ClassVar[int]
    SUMMARY_FIELD_NUMBER: _ClassVar[int]
    STARTED_UNIX_S_FIELD_NUMBER: _ClassVar[int]
    CONTRIBUTION_FIELD_NUMBER: _ClassVar[int]
    TIMELINE_FIELD_NUMBER: _ClassVar[int]
    MARKS_FIELD_NUMBER: _ClassVar[int]
    QUALITY_FIELD_NUMBER: _ClassVar[int]
    schema_version: int
    visit_id: str
    duration_s: float
    timing: _containers.ScalarMap[str, float]
    label_counts: _containers.ScalarMap[str, int]
    observations: _containers.RepeatedCompositeFieldContainer[Observation]
    summary: str
    started_unix_s: int
    contribution: str
    timeline: _containers.RepeatedCompositeFieldContainer[Turn]
    marks: _containers.RepeatedCompositeFieldContainer[TimelineMark]
    quality: AudioQuality
    def __init__(self, schema_version: _Optional[int] = ..., visit_id: _Optional[str] = ..., duration_s: _Optional[float] = ..., timing: _Optional[_Mapping[str, float]] = ..., label_counts: _Optional[_Mapping[str, int]] = ..., observations: _Optional[_Iterable[_Union[Observation, _Mapping]]] = ..., summary: _Optional[str] = ..., started_unix_s: _Optional[int] = ..., contribution: _Optional[str] = ..., timeline: _Optional[_Iterable[_Union[Turn, _Mapping]]] = ..., marks: _Optional[_Iterable[_Union[TimelineMark, _Mapping]]] = ..., quality: _Optional[_Union[AudioQuality, _Mapping]] = ...) -> None: ...
