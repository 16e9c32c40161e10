"""Bundled recordings: the demo consultation and the demo clinician's enrolment speech (CREDITS.md)."""

from __future__ import annotations

from pathlib import Path

from edge_agent.errors import EdgeAgentError

DEMO_CONVERSATION = "demo_conversation.flac"
DEMO_REFERENCE = "demo_conversation.json"
DEMO_ENROLMENT = "demo_enrol.flac"


def bundled(name: str = DEMO_CONVERSATION) -> Path:
    """Path of a bundled file (inside the installed package)."""
    path = Path(__file__).resolve().parent / name
    if not path.is_file():
        raise EdgeAgentError(f"bundled file missing from the package ({path}); reinstall edge-agent")
    return path
