"""Small helpers for user-facing lines (rule 3): an article that fits its word, a value shown as the user wrote it."""

from __future__ import annotations

import datetime as dt
from typing import Any

# words starting with a vowel letter but a consonant sound ("a user"), and the reverse ("an hour")
_CONSONANT_SOUND = ("one", "uni", "usb", "use", "usu", "utf", "eu")
_VOWEL_SOUND = ("hour", "honest", "mdns", "ssl", "sha", "rsa", "http", "html")


def a_or_an(word: str) -> str:
    """``word`` with "a" or "an" before it: ``a_or_an("admin")`` is "an admin", ``a_or_an("clinician")`` "a clinician"."""
    low = word.lower()
    vowel = low[:1] in tuple("aeiou")
    if low.startswith(_CONSONANT_SOUND):
        vowel = False
    elif low.startswith(_VOWEL_SOUND):
        vowel = True
    return f"{'an' if vowel else 'a'} {word}"


def shown(value: Any) -> str:
    """A config or input value as its writer typed it in TOML: ``1979-05-27``, ``true``, ``[1, 2]``, never a Python
    repr such as ``datetime.date(1979, 5, 27)``. Strings keep their quotes (a trailing space stays visible)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dt.datetime):
        text = value.isoformat()
        return text[:-6] + "Z" if text.endswith("+00:00") else text
    if isinstance(value, (dt.date, dt.time)):
        return value.isoformat()
    if isinstance(value, list | tuple):
        return "[" + ", ".join(shown(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k} = {shown(v)}" for k, v in value.items()) + "}"
    return repr(value)
