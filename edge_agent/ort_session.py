"""One way to open an ONNX model: provider check, thread settings, one-line errors.

Every ONNX model of the device (speaker encoder, sentence encoder, behaviour heads)
opens through :func:`open_session`, so the CUDA path (Jetson) and the messages for a
missing provider or a damaged file are the same everywhere.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from edge_agent.errors import ModelError

PROVIDERS = {"cpu": "CPUExecutionProvider", "cuda": "CUDAExecutionProvider"}


def first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:160] if text else type(exc).__name__


def open_session(path: Path, threads: int, provider: str, what: str, rebuild: str, per_sentence: bool = False) -> Any:
    """An onnxruntime session with ``threads`` intra-op threads on ``provider`` ("cpu" | "cuda").

    ``what`` names the model in messages; ``rebuild`` is the command that makes it again.
    ``per_sentence``: the model runs once per sentence on a small shared CPU (the behaviour
    classifier): full graph optimisation, sequential execution, and worker threads that
    sleep instead of spinning between calls (spinning steals the core from the ASR and
    from other sessions, which shows up as latency tails under load).
    """
    import onnxruntime as ort

    name = PROVIDERS.get(provider)
    if name is None:
        raise ModelError(f"unknown provider {provider!r} for the {what}; use one of: {', '.join(PROVIDERS)}")
    if name not in ort.get_available_providers():
        raise ModelError(
            f"provider {provider!r} requested for the {what} but onnxruntime here offers only "
            f"{', '.join(ort.get_available_providers())}; install onnxruntime-gpu or set provider = \"cpu\""
        )
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = max(1, threads)
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    if per_sentence:
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        opts.add_session_config_entry("session.inter_op.allow_spinning", "0")
    providers = [name] if name == "CPUExecutionProvider" else [name, "CPUExecutionProvider"]
    try:
        return ort.InferenceSession(str(path), sess_options=opts, providers=providers)
    except Exception as exc:  # onnxruntime raises its own types for a damaged file
        raise ModelError(f"{what} {path} cannot be loaded ({first_line(exc)}); rebuild it: {rebuild}") from None


def int8_kernel_class() -> str:
    """Which family of onnxruntime's int8 matrix kernels this CPU runs: "x86-vnni", "x86-avx2", "arm64" or "other".

    The int8 sentence encoder's outputs are exact within a family and differ across families: without VNNI,
    x86 multiplies u8 x s8 pairs with an instruction that saturates at 16 bits, so a model quantised and
    evaluated on one family gives slightly different probabilities on another (measured in
    docs/behaviours-eval.md). Parity with training is checked within the family it was recorded on.
    """
    import platform

    machine = platform.machine().lower()
    if machine in ("aarch64", "arm64"):
        return "arm64"
    if machine not in ("x86_64", "amd64"):
        return "other"
    try:
        flags = Path("/proc/cpuinfo").read_text(encoding="ascii", errors="replace")
    except OSError:
        return "other"
    words = set(flags.split())
    if {"avx512_vnni", "avx_vnni"} & words:
        return "x86-vnni"
    return "x86-avx2" if "avx2" in words else "other"
