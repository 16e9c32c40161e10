"""User-facing errors.

Every failure a person can cause or fix (bad file, missing model, no microphone,
expired certificate, full disk, ...) is raised as an :class:`EdgeAgentError` whose
message is one line saying what is wrong and what to do. The CLI prints it
without a traceback; the daemon logs it and stays up.
"""

from __future__ import annotations

# Exit status of a start refusal that retrying cannot fix (sysexits' EX_CONFIG): the unit's
# RestartPreventExitStatus= names it, so systemd does not restart-loop on it. Only for refusals that stay true
# until IT acts (e.g. an outbox written by a newer release); never a busy port, a missing device or a full disk.
EXIT_NOT_RESTARTABLE = 78


class EdgeAgentError(Exception):
    """An error with a one-line, actionable message for the user.

    ``clinician``: the same refusal for a clinician (phone, web app), when ``message`` is IT's (names a config key,
    a device list): what the clinician can do about it, which is often to call IT."""

    exit_code = 2

    def __init__(self, message: str, clinician: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.clinician = clinician

    @property
    def for_clinician(self) -> str:
        return getattr(self, "clinician", None) or self.message  # a subclass may set only its message

    def __str__(self) -> str:
        return self.message


class AudioInputError(EdgeAgentError):
    """The audio file or device cannot be used."""


class ModelError(EdgeAgentError):
    """A model is missing, corrupt, or does not match models/MANIFEST."""


class ConfigError(EdgeAgentError):
    """A configuration key or value is invalid."""


class ServiceCrash(EdgeAgentError):
    """A long-running service (the daemon, the aggregator) stopped on an unexpected error, i.e. a bug. Its message
    names the exception's type only: the line goes to the journal, and a foreign exception's message may quote data."""

    exit_code = 70
