"""Benchmarks behind `edge-agent bench`."""
