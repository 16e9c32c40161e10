from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

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

class Feedback(_message.Message):
    __slots__ = ("schema_version", "visit_id", "duration_s", "timing", "label_counts", "observations", "summary", "started_unix_s", "contribution")
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
    schema_version: int
    visit_id: str
    duration_s: float
    timing: _containers.ScalarMap[str, float]
    label_counts: _containers.ScalarMap[str, int]
    observations: _containers.RepeatedCompositeFieldContainer[Observation]
    summary: str
    started_unix_s: int
    contribution: str
    def __init__(self, schema_version: _Optional[int] = ..., visit_id: _Optional[str] = ..., duration_s: _Optional[float] = ..., timing: _Optional[_Mapping[str, float]] = ..., label_counts: _Optional[_Mapping[str, int]] = ..., observations: _Optional[_Iterable[_Union[Observation, _Mapping]]] = ..., summary: _Optional[str] = ..., started_unix_s: _Optional[int] = ..., contribution: _Optional[str] = ...) -> None: ...
