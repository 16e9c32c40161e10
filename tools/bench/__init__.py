"""Benchmarks behind ``edge-agent bench`` (run from a source checkout)."""
