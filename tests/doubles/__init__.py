"""Test doubles: stand-ins for the pipeline where a test is not about the pipeline."""
