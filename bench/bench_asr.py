#!/usr/bin/env python3
"""Same as `edge-agent bench asr`: python bench/bench_asr.py [--audio FILE]."""

from edge_agent.bench.asr import _main

if __name__ == "__main__":
    _main()
