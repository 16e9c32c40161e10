from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Optional as _Optional

DESCRIPTOR: _descriptor.FileDescriptor

class WebChallengeRequest(_message.Message):
    __slots__ = ("phone_nonce",)
    PHONE_NONCE_FIELD_NUMBER: _ClassVar[int]
    phone_nonce: bytes
    def __init__(self, phone_nonce: _Optional[bytes] = ...) -> None: ...

class WebChallengeResponse(_message.Message):
    __slots__ = ("challenge", "device_certificate", "device_signature", "room", "valid_for_s")
    CHALLENGE_FIELD_NUMBER: _ClassVar[int]
    DEVICE_CERTIFICATE_FIELD_NUMBER: _ClassVar[int]
    DEVICE_SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    ROOM_FIELD_NUMBER: _ClassVar[int]
    VALID_FOR_S_FIELD_NUMBER: _ClassVar[int]
    challenge: bytes
    device_certificate: bytes
    device_signature: bytes
    room: str
    valid_for_s: int
    def __init__(self, challenge: _Optional[bytes] = ..., device_certificate: _Optional[bytes] = ..., device_signature: _Optional[bytes] = ..., room: _Optional[str] = ..., valid_for_s: _Optional[int] = ...) -> None: ...

class WebLoginRequest(_message.Message):
    __slots__ = ("challenge", "certificate", "signature")
    CHALLENGE_FIELD_NUMBER: _ClassVar[int]
    CERTIFICATE_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    challenge: bytes
    certificate: bytes
    signature: bytes
    def __init__(self, challenge: _Optional[bytes] = ..., certificate: _Optional[bytes] = ..., signature: _Optional[bytes] = ...) -> None: ...

class WebLoginResponse(_message.Message):
    __slots__ = ("token", "valid_for_s", "certificate_not_after_unix_s")
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    VALID_FOR_S_FIELD_NUMBER: _ClassVar[int]
    CERTIFICATE_NOT_AFTER_UNIX_S_FIELD_NUMBER: _ClassVar[int]
    token: str
    valid_for_s: int
    certificate_not_after_unix_s: int
    def __init__(self, token: _Optional[str] = ..., valid_for_s: _Optional[int] = ..., certificate_not_after_unix_s: _Optional[int] = ...) -> None: ...
