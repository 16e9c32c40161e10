"""The behaviour catalogue's language labels (docs/design.md §5): part of the interface."""

from __future__ import annotations

LABELS: tuple[str, ...] = (
    "open_question",
    "closed_question",
    "agenda_solicitation",
    "empathy",
    "reflection",
    "information",
    "advice",
    "teach_back",
    "jargon",
    "reassurance",
    "partnership",
)
