from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class SealedContribution(_message.Message):
    __slots__ = ("record_id", "recipient_key_id", "sealed", "suite")
    RECORD_ID_FIELD_NUMBER: _ClassVar[int]
    RECIPIENT_KEY_ID_FIELD_NUMBER: _ClassVar[int]
    SEALED_FIELD_NUMBER: _ClassVar[int]
    SUITE_FIELD_NUMBER: _ClassVar[int]
    record_id: str
    recipient_key_id: bytes
    sealed: bytes
    suite: str
    def __init__(self, record_id: _Optional[str] = ..., recipient_key_id: _Optional[bytes] = ..., sealed: _Optional[bytes] = ..., suite: _Optional[str] = ...) -> None: ...

class SubmitContributionsRequest(_message.Message):
    __slots__ = ("items",)
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    items: _containers.RepeatedCompositeFieldContainer[SealedContribution]
    def __init__(self, items: _Optional[_Iterable[_Union[SealedContribution, _Mapping]]] = ...) -> None: ...

class RejectedContribution(_message.Message):
    __slots__ = ("record_id", "reason", "permanent")
    RECORD_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    PERMANENT_FIELD_NUMBER: _ClassVar[int]
    record_id: str
    reason: str
    permanent: bool
    def __init__(self, record_id: _Optional[str] = ..., reason: _Optional[str] = ..., permanent: _Optional[bool] = ...) -> None: ...

class SubmitContributionsResponse(_message.Message):
    __slots__ = ("accepted", "rejected")
    ACCEPTED_FIELD_NUMBER: _ClassVar[int]
    REJECTED_FIELD_NUMBER: _ClassVar[int]
    accepted: _containers.RepeatedScalarFieldContainer[str]
    rejected: _containers.RepeatedCompositeFieldContainer[RejectedContribution]
    def __init__(self, accepted: _Optional[_Iterable[str]] = ..., rejected: _Optional[_Iterable[_Union[RejectedContribution, _Mapping]]] = ...) -> None: ...

class QueryCellRequest(_message.Message):
    __slots__ = ("period", "service_line", "metric", "epsilon")
    PERIOD_FIELD_NUMBER: _ClassVar[int]
    SERVICE_LINE_FIELD_NUMBER: _ClassVar[int]
    METRIC_FIELD_NUMBER: _ClassVar[int]
    EPSILON_FIELD_NUMBER: _ClassVar[int]
    period: str
    service_line: str
    metric: str
    epsilon: float
    def __init__(self, period: _Optional[str] = ..., service_line: _Optional[str] = ..., metric: _Optional[str] = ..., epsilon: _Optional[float] = ...) -> None: ...

class CellRelease(_message.Message):
    __slots__ = ("period", "service_line", "metric", "status", "has_value", "value", "ci95", "noisy_clinicians", "epsilon", "epsilon_requested", "sum_scale", "count_scale", "mechanism", "unit", "reason", "repeated")
    PERIOD_FIELD_NUMBER: _ClassVar[int]
    SERVICE_LINE_FIELD_NUMBER: _ClassVar[int]
    METRIC_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    HAS_VALUE_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    CI95_FIELD_NUMBER: _ClassVar[int]
    NOISY_CLINICIANS_FIELD_NUMBER: _ClassVar[int]
    EPSILON_FIELD_NUMBER: _ClassVar[int]
    EPSILON_REQUESTED_FIELD_NUMBER: _ClassVar[int]
    SUM_SCALE_FIELD_NUMBER: _ClassVar[int]
    COUNT_SCALE_FIELD_NUMBER: _ClassVar[int]
    MECHANISM_FIELD_NUMBER: _ClassVar[int]
    UNIT_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    REPEATED_FIELD_NUMBER: _ClassVar[int]
    period: str
    service_line: str
    metric: str
    status: str
    has_value: bool
    value: float
    ci95: float
    noisy_clinicians: int
    epsilon: float
    epsilon_requested: float
    sum_scale: float
    count_scale: float
    mechanism: str
    unit: str
    reason: str
    repeated: bool
    def __init__(self, period: _Optional[str] = ..., service_line: _Optional[str] = ..., metric: _Optional[str] = ..., status: _Optional[str] = ..., has_value: _Optional[bool] = ..., value: _Optional[float] = ..., ci95: _Optional[float] = ..., noisy_clinicians: _Optional[int] = ..., epsilon: _Optional[float] = ..., epsilon_requested: _Optional[float] = ..., sum_scale: _Optional[float] = ..., count_scale: _Optional[float] = ..., mechanism: _Optional[str] = ..., unit: _Optional[str] = ..., reason: _Optional[str] = ..., repeated: _Optional[bool] = ...) -> None: ...

class ReportRequest(_message.Message):
    __slots__ = ("period", "metrics", "epsilon")
    PERIOD_FIELD_NUMBER: _ClassVar[int]
    METRICS_FIELD_NUMBER: _ClassVar[int]
    EPSILON_FIELD_NUMBER: _ClassVar[int]
    period: str
    metrics: _containers.RepeatedScalarFieldContainer[str]
    epsilon: float
    def __init__(self, period: _Optional[str] = ..., metrics: _Optional[_Iterable[str]] = ..., epsilon: _Optional[float] = ...) -> None: ...

class ReportResponse(_message.Message):
    __slots__ = ("cells", "epsilon_budget")
    CELLS_FIELD_NUMBER: _ClassVar[int]
    EPSILON_BUDGET_FIELD_NUMBER: _ClassVar[int]
    cells: _containers.RepeatedCompositeFieldContainer[CellRelease]
    epsilon_budget: float
    def __init__(self, cells: _Optional[_Iterable[_Union[CellRelease, _Mapping]]] = ..., epsilon_budget: _Optional[float] = ...) -> None: ...
