#!/usr/bin/env python3
"""Regenerate the checked-in Python code for proto/edge_agent/v1/*.proto.

    python -m tools.gen_proto          # rewrite edge_agent/proto/edge_agent/v1/
    python -m tools.gen_proto --check  # exit 1 if the checked-in files are stale

protoc (from grpcio-tools) writes absolute imports (``from edge_agent.v1 import
agent_pb2``) that would collide with our real ``edge_agent`` package, so the one
deterministic post-step below turns them into package-relative imports. Nothing
else touches the generated files; never edit them by hand.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROTO_ROOT = ROOT / "proto"
PROTO_DIR = PROTO_ROOT / "edge_agent" / "v1"
OUT_DIR = ROOT / "edge_agent" / "proto" / "edge_agent" / "v1"
HEADER_INIT = '"""Generated protobuf/gRPC code for edge_agent.v1 (see tools/gen_proto.py)."""\n'
IMPORT_RE = re.compile(r"^from edge_agent\.v1 import (\w+_pb2)", re.MULTILINE)


def generate(dest: Path) -> None:
    protos = sorted(str(p.relative_to(PROTO_ROOT)) for p in PROTO_DIR.glob("*.proto"))
    cmd = [
        sys.executable, "-m", "grpc_tools.protoc",
        f"-I{PROTO_ROOT}",
        f"--python_out={dest}", f"--pyi_out={dest}", f"--grpc_python_out={dest}",
        *protos,
    ]
    subprocess.run(cmd, check=True, cwd=PROTO_ROOT)
    gen = dest / "edge_agent" / "v1"
    for path in sorted(gen.glob("*.py*")):
        text = IMPORT_RE.sub(r"from . import \1", path.read_text())
        path.write_text(text)
    (gen / "__init__.py").write_text(HEADER_INIT)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only compare, do not write")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        generate(Path(tmp))
        fresh = Path(tmp) / "edge_agent" / "v1"
        names = sorted(p.name for p in fresh.iterdir() if p.is_file())
        if args.check:
            current = sorted(p.name for p in OUT_DIR.glob("*") if p.is_file()) if OUT_DIR.is_dir() else []
            stale = [n for n in names if not (OUT_DIR / n).is_file() or (OUT_DIR / n).read_bytes() != (fresh / n).read_bytes()]
            extra = [n for n in current if n not in names]
            if stale or extra:
                print(f"generated code is stale: {stale + extra}; run python -m tools.gen_proto", file=sys.stderr)
                return 1
            return 0
        OUT_DIR.mkdir(parents=True, exist_ok=True)
        for old in OUT_DIR.glob("*"):
            if old.is_file():
                old.unlink()
        for n in names:
            shutil.copyfile(fresh / n, OUT_DIR / n)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
