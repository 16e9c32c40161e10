"""Developer tools, not installed: benchmarks, corpora and synthesis, model training, code generation."""
