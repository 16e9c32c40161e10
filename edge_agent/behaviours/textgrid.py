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

_DECLARED = re.compile(r"intervals:\s*size\s*=\s*(\d+)")


def read_textgrid(path: Path) -> list[Interval]:
    """Return the non-empty intervals of the first IntervalTier, in time order."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise EdgeAgentError(f"cannot read TextGrid {path}: {exc.strerror}; check the path") from None
    # Praat writes UTF-16 (with a BOM) as soon as the text has a non-ASCII character, UTF-8 otherwise
    utf16 = data[:2] in (b"\xff\xfe", b"\xfe\xff")
    raw = data.decode("utf-16" if utf16 else "utf-8-sig", errors="replace")
    if "ooTextFile" not in raw[:200] or "IntervalTier" not in raw:
        raise EdgeAgentError(f"{path} is not a Praat TextGrid with an IntervalTier")
    intervals = []
    found = 0
    for match in _INTERVAL.finditer(raw):
        found += 1
        text = match.group(3).replace('""', '"').strip()
        if text:
            intervals.append(Interval(float(match.group(1)), float(match.group(2)), text))
    declared = sum(int(n) for n in _DECLARED.findall(raw))
    if found < declared:  # cut short (a failed copy): its metrics would be those of part of the visit, silently
        raise EdgeAgentError(f"{path} is truncated: its tiers declare {declared} intervals but {found} could be read; "
                             "copy the file again")
    intervals.sort(key=lambda iv: iv.start)
    return intervals


_TAG = re.compile(r"</?UNSURE>|<UNIN/>|<[^>]{1,20}>")
_SPACES = re.compile(r"\s+")


def clean_text(text: str) -> str:
    """Drop transcriber tags (<UNSURE>, <UNIN/>) and squeeze whitespace."""
    return _SPACES.sub(" ", _TAG.sub(" ", text)).strip()
