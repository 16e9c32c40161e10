"""edge-agent: on-device communication coaching for clinical exam rooms."""

__version__ = "0.1.0"
