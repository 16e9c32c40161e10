"""Real-voice conversations, metrics and benchmark for the audio path (issue 12)."""
