"""One-line user-facing errors of the population package."""

from __future__ import annotations

from edge_agent.errors import EdgeAgentError


class PopulationError(EdgeAgentError):
    """A contribution record, period key or aggregator request is invalid."""


class PeriodKeyGoneError(PopulationError):
    """The pseudonym key of a past period was destroyed; its contributions can no longer be made."""


class ContributionRejected(PopulationError):
    """The aggregator refuses a sealed contribution (does not open, malformed, period closed)."""

    def __init__(self, message: str, permanent: bool = True) -> None:
        super().__init__(message)
        self.permanent = permanent


class BudgetExhaustedError(PopulationError):
    """The privacy budget of a period is spent: no more releases, and never an un-noised one."""


class PeriodOpenError(PopulationError):
    """A period is still collecting contributions; releases wait until it is closed."""


class QuotaExceeded(PopulationError):
    """A contributor certificate sent more records in a period than the policy allows."""
