"""Minimal reader for Praat long-format TextGrid files (IntervalTier only).

PriMock57 ships one TextGrid per speaker; this reads the non-empty intervals.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from edge_agent.errors import EdgeAgentError


@dataclass(frozen=True)
class Interval:
    start: float
    end: float
    text: str


_INTERVAL = re.compile(
    r"intervals\s*\[\d+\]:\s*xmin\s*=\s*([-\d.eE+]+)\s*xmax\s*=\s*([-\d.eE+]+)\s*text\s*=\s*\"((?:[^\"]|\"\")*)\"",
    re.MULTILINE,
)


def read_textgrid(path: Path) -> list[Interval]:
    """Return the non-empty intervals of the first IntervalTier, in time order."""
    try:
        raw = path.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise EdgeAgentError(f"cannot read TextGrid {path}: {exc.strerror}; check the path") from None
    if "ooTextFile" not in raw[:200] or "IntervalTier" not in raw:
        raise EdgeAgentError(f"{path} is not a Praat TextGrid with an IntervalTier")
    intervals = []
    for match in _INTERVAL.finditer(raw):
        text = match.group(3).replace('""', '"').strip()
        if text:
            intervals.append(Interval(float(match.group(1)), float(match.group(2)), text))
    intervals.sort(key=lambda iv: iv.start)
    return intervals


_TAG = re.compile(r"</?UNSURE>|<UNIN/>|<[^>]{1,20}>")
_SPACES = re.compile(r"\s+")


def clean_text(text: str) -> str:
    """Drop transcriber tags (<UNSURE>, <UNIN/>) and squeeze whitespace."""
    return _SPACES.sub(" ", _TAG.sub(" ", text)).strip()
