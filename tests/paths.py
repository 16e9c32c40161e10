"""Where the repository is, for tests that read its files (models, docs, the unit, tests/data)."""

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent

# the words of ../shared/audio/jfk.flac
JFK_TEXT = "And so my fellow Americans ask not what your country can do for you, ask what you can do for your country."
