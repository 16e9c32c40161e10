"""Readers for the reference corpora used to build and evaluate models."""
