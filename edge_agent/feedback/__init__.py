"""Visit feedback: coaching observations and the clinician's report."""

from edge_agent.feedback.observations import Observation
from edge_agent.feedback.report import Feedback, build_feedback, render_text

__all__ = ["Feedback", "Observation", "build_feedback", "render_text"]
