"""The real recogniser on a slow or loaded machine: its decodes take longer (fault injection, not a stand-in)."""

from __future__ import annotations

import time
from typing import Any


class SlowDecoder:
    """Every decode (only finals, with ``finals_only``) takes ``delay_s`` longer; everything else is the real one."""

    def __init__(self, real: Any, delay_s: float, finals_only: bool = False) -> None:
        self._real = real
        self._delay_s = delay_s
        self._finals_only = finals_only

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)

    def decode_features(self, *args: Any, **kwargs: Any) -> Any:
        if not self._finals_only or kwargs.get("final"):
            time.sleep(self._delay_s)
        return self._real.decode_features(*args, **kwargs)
