"""Who is speaking: GE2E speaker embeddings (ONNX), clinician enrolment, per-segment attribution."""
