#!/usr/bin/env python3
"""Same as `edge-agent bench asr`: python -m tools.bench.bench_asr [--audio FILE]."""

from tools.bench.asr import _main

if __name__ == "__main__":
    _main()
