from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class NoReportReason(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    NO_REPORT_REASON_UNSPECIFIED: _ClassVar[NoReportReason]
    NO_REPORT_FAULT: _ClassVar[NoReportReason]
    NO_REPORT_CAPTURE_FAILED: _ClassVar[NoReportReason]
    NO_REPORT_STORAGE_FULL: _ClassVar[NoReportReason]
    NO_REPORT_DISCARDED: _ClassVar[NoReportReason]

class VoiceprintUse(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    VOICEPRINT_USE_UNSPECIFIED: _ClassVar[VoiceprintUse]
    VOICEPRINT_NONE: _ClassVar[VoiceprintUse]
    VOICEPRINT_USED: _ClassVar[VoiceprintUse]
    VOICEPRINT_UNCHECKED: _ClassVar[VoiceprintUse]
    VOICEPRINT_STALE: _ClassVar[VoiceprintUse]

class ClaimState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CLAIM_STATE_UNSPECIFIED: _ClassVar[ClaimState]
    CLAIM_PENDING: _ClassVar[ClaimState]
    CLAIM_STARTED: _ClassVar[ClaimState]
    CLAIM_CONTESTED: _ClassVar[ClaimState]
    CLAIM_EXPIRED: _ClassVar[ClaimState]
NO_REPORT_REASON_UNSPECIFIED: NoReportReason
NO_REPORT_FAULT: NoReportReason
NO_REPORT_CAPTURE_FAILED: NoReportReason
NO_REPORT_STORAGE_FULL: NoReportReason
NO_REPORT_DISCARDED: NoReportReason
VOICEPRINT_USE_UNSPECIFIED: VoiceprintUse
VOICEPRINT_NONE: VoiceprintUse
VOICEPRINT_USED: VoiceprintUse
VOICEPRINT_UNCHECKED: VoiceprintUse
VOICEPRINT_STALE: VoiceprintUse
CLAIM_STATE_UNSPECIFIED: ClaimState
CLAIM_PENDING: ClaimState
CLAIM_STARTED: ClaimState
CLAIM_CONTESTED: ClaimState
CLAIM_EXPIRED: ClaimState

class GetDeviceInfoRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class DeviceInfo(_message.Message):
    __slots__ = ("protocol_version", "room", "capabilities", "software_version", "visit_active", "outbox_id", "crl", "speaker_model", "own_visit_id", "own_visit_started_unix_s", "ended_without_report")
    PROTOCOL_VERSION_FIELD_NUMBER: _ClassVar[int]
    ROOM_FIELD_NUMBER: _ClassVar[int]
    CAPABILITIES_FIELD_NUMBER: _ClassVar[int]
    SOFTWARE_VERSION_FIELD_NUMBER: _ClassVar[int]
    VISIT_ACTIVE_FIELD_NUMBER: _ClassVar[int]
    OUTBOX_ID_FIELD_NUMBER: _ClassVar[int]
    CRL_FIELD_NUMBER: _ClassVar[int]
    SPEAKER_MODEL_FIELD_NUMBER: _ClassVar[int]
    OWN_VISIT_ID_FIELD_NUMBER: _ClassVar[int]
    OWN_VISIT_STARTED_UNIX_S_FIELD_NUMBER: _ClassVar[int]
    ENDED_WITHOUT_REPORT_FIELD_NUMBER: _ClassVar[int]
    protocol_version: int
    room: str
    capabilities: _containers.RepeatedScalarFieldContainer[str]
    software_version: str
    visit_active: bool
    outbox_id: str
    crl: bytes
    speaker_model: str
    own_visit_id: str
    own_visit_started_unix_s: int
    ended_without_report: _containers.RepeatedCompositeFieldContainer[EndedVisit]
    def __init__(self, protocol_version: _Optional[int] = ..., room: _Optional[str] = ..., capabilities: _Optional[_Iterable[str]] = ..., software_version: _Optional[str] = ..., visit_active: _Optional[bool] = ..., outbox_id: _Optional[str] = ..., crl: _Optional[bytes] = ..., speaker_model: _Optional[str] = ..., own_visit_id: _Optional[str] = ..., own_visit_started_unix_s: _Optional[int] = ..., ended_without_report: _Optional[_Iterable[_Union[EndedVisit, _Mapping]]] = ...) -> None: ...

class EndedVisit(_message.Message):
    __slots__ = ("visit_id", "reason", "ended_unix_s")
    VISIT_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    ENDED_UNIX_S_FIELD_NUMBER: _ClassVar[int]
    visit_id: str
    reason: NoReportReason
    ended_unix_s: int
    def __init__(self, visit_id: _Optional[str] = ..., reason: _Optional[_Union[NoReportReason, str]] = ..., ended_unix_s: _Optional[int] = ...) -> None: ...

class StartVisitRequest(_message.Message):
    __slots__ = ("consent", "sealing_public_key", "voiceprint", "voiceprint_values", "max_duration_s", "room_code", "voiceprint_model")
    CONSENT_FIELD_NUMBER: _ClassVar[int]
    SEALING_PUBLIC_KEY_FIELD_NUMBER: _ClassVar[int]
    VOICEPRINT_FIELD_NUMBER: _ClassVar[int]
    VOICEPRINT_VALUES_FIELD_NUMBER: _ClassVar[int]
    MAX_DURATION_S_FIELD_NUMBER: _ClassVar[int]
    ROOM_CODE_FIELD_NUMBER: _ClassVar[int]
    VOICEPRINT_MODEL_FIELD_NUMBER: _ClassVar[int]
    consent: bool
    sealing_public_key: bytes
    voiceprint: bytes
    voiceprint_values: _containers.RepeatedScalarFieldContainer[float]
    max_duration_s: int
    room_code: str
    voiceprint_model: str
    def __init__(self, consent: _Optional[bool] = ..., sealing_public_key: _Optional[bytes] = ..., voiceprint: _Optional[bytes] = ..., voiceprint_values: _Optional[_Iterable[float]] = ..., max_duration_s: _Optional[int] = ..., room_code: _Optional[str] = ..., voiceprint_model: _Optional[str] = ...) -> None: ...

class StartVisitResponse(_message.Message):
    __slots__ = ("visit_id", "started_unix_s", "max_duration_s", "voiceprint_use", "notice")
    VISIT_ID_FIELD_NUMBER: _ClassVar[int]
    STARTED_UNIX_S_FIELD_NUMBER: _ClassVar[int]
    MAX_DURATION_S_FIELD_NUMBER: _ClassVar[int]
    VOICEPRINT_USE_FIELD_NUMBER: _ClassVar[int]
    NOTICE_FIELD_NUMBER: _ClassVar[int]
    visit_id: str
    started_unix_s: int
    max_duration_s: int
    voiceprint_use: VoiceprintUse
    notice: str
    def __init__(self, visit_id: _Optional[str] = ..., started_unix_s: _Optional[int] = ..., max_duration_s: _Optional[int] = ..., voiceprint_use: _Optional[_Union[VoiceprintUse, str]] = ..., notice: _Optional[str] = ...) -> None: ...

class StopVisitRequest(_message.Message):
    __slots__ = ("visit_id",)
    VISIT_ID_FIELD_NUMBER: _ClassVar[int]
    visit_id: str
    def __init__(self, visit_id: _Optional[str] = ...) -> None: ...

class StopVisitResponse(_message.Message):
    __slots__ = ("visit_id", "cursor", "duration_s")
    VISIT_ID_FIELD_NUMBER: _ClassVar[int]
    CURSOR_FIELD_NUMBER: _ClassVar[int]
    DURATION_S_FIELD_NUMBER: _ClassVar[int]
    visit_id: str
    cursor: int
    duration_s: float
    def __init__(self, visit_id: _Optional[str] = ..., cursor: _Optional[int] = ..., duration_s: _Optional[float] = ...) -> None: ...

class EnrollVoiceChunk(_message.Message):
    __slots__ = ("sample_rate", "pcm_s16le")
    SAMPLE_RATE_FIELD_NUMBER: _ClassVar[int]
    PCM_S16LE_FIELD_NUMBER: _ClassVar[int]
    sample_rate: int
    pcm_s16le: bytes
    def __init__(self, sample_rate: _Optional[int] = ..., pcm_s16le: _Optional[bytes] = ...) -> None: ...

class EnrollVoiceResponse(_message.Message):
    __slots__ = ("voiceprint_values", "audio_s", "voiceprint_model")
    VOICEPRINT_VALUES_FIELD_NUMBER: _ClassVar[int]
    AUDIO_S_FIELD_NUMBER: _ClassVar[int]
    VOICEPRINT_MODEL_FIELD_NUMBER: _ClassVar[int]
    voiceprint_values: _containers.RepeatedScalarFieldContainer[float]
    audio_s: float
    voiceprint_model: str
    def __init__(self, voiceprint_values: _Optional[_Iterable[float]] = ..., audio_s: _Optional[float] = ..., voiceprint_model: _Optional[str] = ...) -> None: ...

class Envelope(_message.Message):
    __slots__ = ("suite", "visit_id", "seq", "recipient_key_id", "sealed", "created_unix_s")
    SUITE_FIELD_NUMBER: _ClassVar[int]
    VISIT_ID_FIELD_NUMBER: _ClassVar[int]
    SEQ_FIELD_NUMBER: _ClassVar[int]
    RECIPIENT_KEY_ID_FIELD_NUMBER: _ClassVar[int]
    SEALED_FIELD_NUMBER: _ClassVar[int]
    CREATED_UNIX_S_FIELD_NUMBER: _ClassVar[int]
    suite: str
    visit_id: str
    seq: int
    recipient_key_id: bytes
    sealed: bytes
    created_unix_s: int
    def __init__(self, suite: _Optional[str] = ..., visit_id: _Optional[str] = ..., seq: _Optional[int] = ..., recipient_key_id: _Optional[bytes] = ..., sealed: _Optional[bytes] = ..., created_unix_s: _Optional[int] = ...) -> None: ...

class StreamFeedbackRequest(_message.Message):
    __slots__ = ("cursor", "follow")
    CURSOR_FIELD_NUMBER: _ClassVar[int]
    FOLLOW_FIELD_NUMBER: _ClassVar[int]
    cursor: int
    follow: bool
    def __init__(self, cursor: _Optional[int] = ..., follow: _Optional[bool] = ...) -> None: ...

class FeedbackItem(_message.Message):
    __slots__ = ("id", "envelope")
    ID_FIELD_NUMBER: _ClassVar[int]
    ENVELOPE_FIELD_NUMBER: _ClassVar[int]
    id: int
    envelope: Envelope
    def __init__(self, id: _Optional[int] = ..., envelope: _Optional[_Union[Envelope, _Mapping]] = ...) -> None: ...

class AckRequest(_message.Message):
    __slots__ = ("ids",)
    IDS_FIELD_NUMBER: _ClassVar[int]
    ids: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, ids: _Optional[_Iterable[int]] = ...) -> None: ...

class AckResponse(_message.Message):
    __slots__ = ("deleted",)
    DELETED_FIELD_NUMBER: _ClassVar[int]
    deleted: int
    def __init__(self, deleted: _Optional[int] = ...) -> None: ...

class ClaimRoomRequest(_message.Message):
    __slots__ = ("sealing_public_key",)
    SEALING_PUBLIC_KEY_FIELD_NUMBER: _ClassVar[int]
    sealing_public_key: bytes
    def __init__(self, sealing_public_key: _Optional[bytes] = ...) -> None: ...

class ClaimRoomResponse(_message.Message):
    __slots__ = ("valid_for_s", "claim_id", "contested")
    VALID_FOR_S_FIELD_NUMBER: _ClassVar[int]
    CLAIM_ID_FIELD_NUMBER: _ClassVar[int]
    CONTESTED_FIELD_NUMBER: _ClassVar[int]
    valid_for_s: int
    claim_id: str
    contested: bool
    def __init__(self, valid_for_s: _Optional[int] = ..., claim_id: _Optional[str] = ..., contested: _Optional[bool] = ...) -> None: ...

class GetClaimRequest(_message.Message):
    __slots__ = ("claim_id",)
    CLAIM_ID_FIELD_NUMBER: _ClassVar[int]
    claim_id: str
    def __init__(self, claim_id: _Optional[str] = ...) -> None: ...

class ClaimStatus(_message.Message):
    __slots__ = ("state", "visit_id", "valid_for_s", "failure")
    STATE_FIELD_NUMBER: _ClassVar[int]
    VISIT_ID_FIELD_NUMBER: _ClassVar[int]
    VALID_FOR_S_FIELD_NUMBER: _ClassVar[int]
    FAILURE_FIELD_NUMBER: _ClassVar[int]
    state: ClaimState
    visit_id: str
    valid_for_s: int
    failure: str
    def __init__(self, state: _Optional[_Union[ClaimState, str]] = ..., visit_id: _Optional[str] = ..., valid_for_s: _Optional[int] = ..., failure: _Optional[str] = ...) -> None: ...

class GetStatusRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class DeviceStatus(_message.Message):
    __slots__ = ("room", "software_version", "uptime_s", "visit_active", "outbox_items", "outbox_bytes", "outbox_capacity_items", "outbox_capacity_bytes", "server_cert_not_after_unix_s", "revoked_serials")
    ROOM_FIELD_NUMBER: _ClassVar[int]
    SOFTWARE_VERSION_FIELD_NUMBER: _ClassVar[int]
    UPTIME_S_FIELD_NUMBER: _ClassVar[int]
    VISIT_ACTIVE_FIELD_NUMBER: _ClassVar[int]
    OUTBOX_ITEMS_FIELD_NUMBER: _ClassVar[int]
    OUTBOX_BYTES_FIELD_NUMBER: _ClassVar[int]
    OUTBOX_CAPACITY_ITEMS_FIELD_NUMBER: _ClassVar[int]
    OUTBOX_CAPACITY_BYTES_FIELD_NUMBER: _ClassVar[int]
    SERVER_CERT_NOT_AFTER_UNIX_S_FIELD_NUMBER: _ClassVar[int]
    REVOKED_SERIALS_FIELD_NUMBER: _ClassVar[int]
    room: str
    software_version: str
    uptime_s: float
    visit_active: bool
    outbox_items: int
    outbox_bytes: int
    outbox_capacity_items: int
    outbox_capacity_bytes: int
    server_cert_not_after_unix_s: int
    revoked_serials: int
    def __init__(self, room: _Optional[str] = ..., software_version: _Optional[str] = ..., uptime_s: _Optional[float] = ..., visit_active: _Optional[bool] = ..., outbox_items: _Optional[int] = ..., outbox_bytes: _Optional[int] = ..., outbox_capacity_items: _Optional[int] = ..., outbox_capacity_bytes: _Optional[int] = ..., server_cert_not_after_unix_s: _Optional[int] = ..., revoked_serials: _Optional[int] = ...) -> None: ...

class ForceStopVisitRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ForceStopVisitResponse(_message.Message):
    __slots__ = ("stopped",)
    STOPPED_FIELD_NUMBER: _ClassVar[int]
    stopped: bool
    def __init__(self, stopped: _Optional[bool] = ...) -> None: ...

class PurgeExpiredRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class PurgeExpiredResponse(_message.Message):
    __slots__ = ("purged",)
    PURGED_FIELD_NUMBER: _ClassVar[int]
    purged: int
    def __init__(self, purged: _Optional[int] = ...) -> None: ...
