"""Printing results: JSON for programs, readable lines for people."""

from __future__ import annotations

import json
from typing import Any


def emit(result: Any, as_json: bool) -> None:
    if as_json:
        print(json.dumps(result, ensure_ascii=False))
    elif isinstance(result, dict):
        for key, value in result.items():
            print(f"{key}: {value}")
    elif isinstance(result, list):
        for item in result:
            emit(item, False)
            print()
    else:
        print(result)
