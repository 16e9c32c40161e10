"""edge-agent: on-device communication coaching for clinical exam rooms."""

import os as _os

# The numerical work here is many small matrix products (log-mel filters,
# ONNX heads). A multi-threaded BLAS spin-waits between them and doubled the
# pipeline's CPU time on 2 cores (measured); CTranslate2 and onnxruntime keep
# their own configured thread pools. Must run before numpy is imported.
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    _os.environ.setdefault(_var, "1")

# CTranslate2's oneDNN keeps one cached primitive per distinct input shape, and a
# streaming decoder sees many (windows grow, token counts vary): RSS grew from
# 210 MB to ~520 MB over a 30-minute visit. Without the cache the same visit
# stayed at ~220 MB with identical text and time (measured, docs/architecture.md).
_os.environ.setdefault("ONEDNN_PRIMITIVE_CACHE_CAPACITY", "0")

# Nothing leaves or is recorded about this device by a library: onnxruntime
# (1.2x+) otherwise creates a telemetry device id and event store under
# ~/.cache/Microsoft (caught by tests/system/test_no_audio_on_disk.py), and the model
# hub client must never be asked for anything. Forced, not defaulted.
_os.environ["ORT_DISABLE_TELEMETRY"] = "1"
_os.environ["HF_HUB_OFFLINE"] = "1"
_os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"
_os.environ["DO_NOT_TRACK"] = "1"

# gRPC's core logs one INFO line per failed TLS handshake: anyone on the network
# could fill the journal, and the lines would time-stamp every phone's attempts
# (a room schedule). Errors still show. Defaulted: set GRPC_VERBOSITY to debug.
_os.environ.setdefault("GRPC_VERBOSITY", "ERROR")

__version__ = "0.1.0"
