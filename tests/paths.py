"""Where the repository is, for tests that read its files (models, docs, the unit, tests/data)."""

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
