"""Streaming speech recognition on faster-whisper / CTranslate2."""
