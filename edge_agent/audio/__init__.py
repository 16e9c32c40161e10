"""Audio capture, the fixed in-memory buffer pool and voice-activity segmentation."""

SAMPLE_RATE = 16_000
