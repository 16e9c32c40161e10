"""The site's quote policy (``feedback.quotes``), applied where the report is sealed.

With quotes off (the default) no verbatim words leave the device: every
observation's ``clinician_quote`` is emptied, and any quoted span elsewhere in
the report whose words were taken from those quotes is replaced by "…", so the
moment is described (paraphrased), never quoted. The lifecycle calls this on
every report just before sealing it (``edge_agent.device.lifecycle``), whatever
built the report; builders may honour the policy earlier, this is the backstop.

With quotes on, a quote must still come from the sentences the per-utterance
quote gate cleared (``cleared``: :func:`edge_agent.feedback.quote_gate.quotable_sentences`,
handed over by the visit runner): every word of it, piece by piece, inside one
cleared sentence. A quote that is not is removed as with quotes off, with its
copies; so is the strength's bracketed quote in the summary.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Sequence

from edge_agent.proto.edge_agent.v1 import feedback_pb2

_QUOTED = re.compile(r"\"([^\"]+)\"|“([^”]+)”|'([^']{2,})'")
_TEXT_FIELDS = ("moment", "alternative", "rationale")
_BRACKETED_QUOTE = re.compile(r"\s*\((?:\"([^\"]*)\"|“([^”]*)”)\)")
_WORD = re.compile(r"[a-z0-9]+(?:'[a-z0-9]+)*")
_PIECES = re.compile(r"…|\.\.\.|[.?!;:]")  # a quote is cut and redacted ("…") and tidied at sentence ends


def _tokens(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def _inside(part: Sequence[str], whole: Sequence[str]) -> bool:
    n = len(part)
    return any(list(whole[i : i + n]) == list(part) for i in range(len(whole) - n + 1))


def _word_runs(text: str) -> list[list[str]]:
    """The words of ``text`` between cuts, redactions and sentence ends (empty pieces left out)."""
    return [p for p in (_tokens(x) for x in _PIECES.split(text)) if p]


def _cleared(quote: str, cleared: Sequence[list[str]]) -> bool:
    """Every piece of ``quote`` (between cuts, redactions and sentence ends) is a run of words of one cleared sentence."""
    return all(any(_inside(p, c) for c in cleared) for p in _word_runs(quote))


def _copies(inner: str, said: Sequence[list[str]]) -> bool:
    """``inner`` (a quoted span of the report's prose) repeats words of one of the removed quotes."""
    pieces = _word_runs(inner)
    return bool(pieces) and all(any(_inside(p, s) for s in said) for p in pieces)


def _scrub(text: str, said: list[str]) -> str:
    said_tokens = [_tokens(s) for s in said]

    def replace(m: re.Match[str]) -> str:
        inner = next(g for g in m.groups() if g is not None).strip().rstrip("?.!,").lower()
        if inner and (any(inner in s for s in said) or _copies(inner, said_tokens)):
            return "\u201c\u2026\u201d"
        return m.group(0)

    text = _QUOTED.sub(replace, text)
    for s in said:  # an unquoted copy of a whole quote
        if len(s) >= 8:
            text = re.sub(re.escape(s), "\u2026", text, flags=re.IGNORECASE)
    return text


def enforce_quote_policy(fb: feedback_pb2.Feedback, quotes_allowed: bool, cleared: Collection[str] | None = None) -> None:
    """Remove verbatim words from ``fb`` in place unless the site allows quotes; with quotes allowed and
    ``cleared`` given, remove every quote that is not made of the cleared sentences' words."""
    if quotes_allowed and cleared is None:
        return
    ok = [_tokens(c) for c in (cleared or ())] if quotes_allowed else []
    removed: list[str] = []
    for ob in fb.observations:
        quote = ob.clinician_quote.strip()
        if quote and not (quotes_allowed and _cleared(quote, ok)):
            removed.append(quote.lower())
            ob.clinician_quote = ""
    if removed:
        for ob in fb.observations:
            for name in _TEXT_FIELDS:
                setattr(ob, name, _scrub(getattr(ob, name), removed))
    if fb.summary:
        # the strength quotes the clinician in brackets ("What went well: at m:ss ... (\"<their words>\")"):
        # not one of the observations' quotes, so it is checked (quotes off: removed) on its own
        def bracket(m: re.Match[str]) -> str:
            inner = next((g for g in m.groups() if g is not None), "")
            if quotes_allowed and inner.strip() and _cleared(inner, ok):
                return m.group(0)
            removed.append(inner.strip().lower())
            return ""

        fb.summary = _BRACKETED_QUOTE.sub(bracket, fb.summary)
        removed = [r for r in removed if r]
        if removed:
            fb.summary = _scrub(fb.summary, removed)
