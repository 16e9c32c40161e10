"""Readers for the reference corpora and the synthesiser of test conversations."""
