"""Communication behaviours: language labels (ONNX + jargon lexicon), the visit as a conversation
(``conversation``: turns, sentences, what each turn does), the events judged with the surrounding turns
(``events``; rules for the functions the classifier does not give yet in ``functions``) and the timing
metrics read off them (``timing``). Definitions: docs/coaching.md.

Heavy pieces (onnxruntime) load lazily, so importing the package is cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from edge_agent.behaviours.labels import LABELS

if TYPE_CHECKING:
    from edge_agent.behaviours.classifier import BehaviourClassifier, Classification

__all__ = ["LABELS", "BehaviourClassifier", "Classification"]


def __getattr__(name: str) -> object:
    if name in ("BehaviourClassifier", "Classification"):
        from edge_agent.behaviours import classifier

        return getattr(classifier, name)
    raise AttributeError(name)
