"""The site's quote policy (``feedback.quotes``), applied where the report is sealed.

With quotes off (the default) no verbatim words leave the device: every
observation's ``clinician_quote`` is emptied, and any quoted span elsewhere in
the report whose words were taken from those quotes is replaced by "…", so the
moment is described (paraphrased), never quoted. The lifecycle calls this on
every report just before sealing it (``edge_agent.device.lifecycle``), whatever
built the report; builders may honour the policy earlier, this is the backstop.
"""

from __future__ import annotations

import re

from edge_agent.proto.edge_agent.v1 import feedback_pb2

_QUOTED = re.compile(r"\"([^\"]+)\"|“([^”]+)”|'([^']{2,})'")
_TEXT_FIELDS = ("moment", "alternative", "rationale")
_BRACKETED_QUOTE = re.compile(r"\s*\((?:\"[^\"]*\"|“[^”]*”)\)")


def _scrub(text: str, said: list[str]) -> str:
    def replace(m: re.Match[str]) -> str:
        inner = next(g for g in m.groups() if g is not None).strip().rstrip("?.!,").lower()
        if inner and any(inner in s for s in said):
            return "\u201c\u2026\u201d"
        return m.group(0)

    text = _QUOTED.sub(replace, text)
    for s in said:  # an unquoted copy of a whole quote
        if len(s) >= 8:
            text = re.sub(re.escape(s), "\u2026", text, flags=re.IGNORECASE)
    return text


def enforce_quote_policy(fb: feedback_pb2.Feedback, quotes_allowed: bool) -> None:
    """Remove verbatim words from ``fb`` in place unless the site allows quotes."""
    if quotes_allowed:
        return
    said = [ob.clinician_quote.strip().lower() for ob in fb.observations if ob.clinician_quote.strip()]
    for ob in fb.observations:
        ob.clinician_quote = ""
        if said:
            for name in _TEXT_FIELDS:
                setattr(ob, name, _scrub(getattr(ob, name), said))
    if fb.summary:
        # the strength quotes the clinician in brackets ("What went well: at m:ss ... (\"<their words>\")"):
        # not one of the observations' quotes, so it is removed here whatever the observations said
        fb.summary = _BRACKETED_QUOTE.sub("", fb.summary)
        if said:
            fb.summary = _scrub(fb.summary, said)
