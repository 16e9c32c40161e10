"""Differentially private release of one cell, with OpenDP (no noise sampler of our own).

Unit of privacy: one clinician (one pseudonym) in one period. The input is one
value per clinician (their own mean for the metric, already in ``[lo, hi]``),
so adding or removing a clinician changes the input by one element
(symmetric distance 1). The release is an OpenDP composition of

* clamp to ``[lo, hi]`` -> sum -> Laplace, and
* count -> discrete Laplace,

each calibrated by OpenDP to half the requested epsilon; the mean is their
ratio (post-processing). The privacy loss charged is what OpenDP's privacy map
reports for the composed measurement at d_in = 1 (a hair above the request,
because OpenDP rounds conservatively).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from edge_agent.errors import EdgeAgentError

MECHANISM = "opendp: clamp+sum+Laplace, count+discrete Laplace (pure eps-DP, unit = clinician-period)"


@dataclass(frozen=True)
class MeanRelease:
    value: float  # noisy mean, clipped to [lo, hi]
    noisy_sum: float
    noisy_count: int
    epsilon: float  # privacy loss charged (OpenDP privacy map at d_in=1)
    sum_scale: float  # Laplace scale of the sum
    count_scale: float  # discrete Laplace scale of the count
    ci95: float  # approximate half-width of a 95 % interval on the mean (noise only)
    mechanism: str = MECHANISM


def _dp() -> Any:
    try:
        import opendp.prelude as dp
    except ImportError:
        raise EdgeAgentError("OpenDP is not installed; run: pip install opendp") from None
    dp.enable_features("contrib")
    return dp


@lru_cache(maxsize=256)
def _scales(hi: float, epsilon: float) -> tuple[float, float]:
    dp = _dp()
    space = dp.vector_domain(dp.atom_domain(T=float, nan=False)), dp.symmetric_distance()
    sum_scale = dp.binary_search_param(
        lambda s: space >> dp.t.then_clamp((0.0, hi)) >> dp.t.then_sum() >> dp.m.then_laplace(s), d_in=1, d_out=epsilon / 2
    )
    count_scale = dp.binary_search_param(
        lambda s: space >> dp.t.then_count() >> dp.m.then_laplace(s), d_in=1, d_out=epsilon / 2
    )
    return float(sum_scale), float(count_scale)


def release_mean(values: Sequence[float], bounds: tuple[float, float], epsilon: float) -> MeanRelease:
    """Noisy mean of per-clinician values in ``bounds`` at privacy loss ~``epsilon``."""
    lo, hi = bounds
    if lo != 0.0 or hi <= 0.0:
        raise ValueError("bounds must be [0, hi] with hi > 0")
    if not (0.0 < epsilon <= 10.0) or math.isnan(epsilon):
        raise EdgeAgentError(f"epsilon {epsilon} is out of range; use 0 < epsilon <= 10")
    dp = _dp()
    sum_scale, count_scale = _scales(float(hi), float(epsilon))
    space = dp.vector_domain(dp.atom_domain(T=float, nan=False)), dp.symmetric_distance()
    meas = dp.c.make_composition(
        [
            space >> dp.t.then_clamp((0.0, float(hi))) >> dp.t.then_sum() >> dp.m.then_laplace(sum_scale),
            space >> dp.t.then_count() >> dp.m.then_laplace(count_scale),
        ]
    )
    spent = float(meas.map(1))
    noisy_sum, noisy_count = meas([float(v) for v in values])
    denom = max(int(noisy_count), 1)
    value = min(max(float(noisy_sum) / denom, lo), hi)
    ci95 = math.log(20.0) * sum_scale / denom  # P(|Laplace(b)| > b ln 20) = 5 %; count noise ignored
    return MeanRelease(value, float(noisy_sum), int(noisy_count), spent, sum_scale, count_scale, ci95)
