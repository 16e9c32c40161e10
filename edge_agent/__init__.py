"""edge-agent: on-device communication coaching for clinical exam rooms."""

import os as _os

# The numerical work here is many small matrix products (log-mel filters,
# ONNX heads). A multi-threaded BLAS spin-waits between them and doubled the
# pipeline's CPU time on 2 cores (measured); CTranslate2 and onnxruntime keep
# their own configured thread pools. Must run before numpy is imported.
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    _os.environ.setdefault(_var, "1")

__version__ = "0.1.0"
