"""The sampler's spec in numpy: the chain of csrc/sample/sample.h written as plainly as possible.

`sample_reference(logits, u, ...)` takes the uniform draw u explicitly; `draw` is numpy's
Generator.choice(p=p) written out (cumsum, normalize by the last entry, searchsorted right), so
that test_sampling.py can check both that the C++ sampler matches this and that this matches
numpy's choice with the same generator state (the numpy sampler the C++ one replaced).
"""

from __future__ import annotations

import math

import numpy as np


# Sums in index order and libm's exp/log, as the C++ code does, so that both compute the same
# bits and the comparison can be exact (numpy's sum is pairwise, its exp its own).
def _sum(x: np.ndarray) -> float:
    return float(np.cumsum(x)[-1]) if len(x) else 0.0


def _exp(x: np.ndarray) -> np.ndarray:
    return np.array([math.exp(v) for v in x.tolist()], dtype=np.float64)


def _log(x: np.ndarray) -> np.ndarray:
    return np.array([math.log(v) for v in x.tolist()], dtype=np.float64)


def _keep_prefix(p: np.ndarray, order: np.ndarray, mass: float) -> np.ndarray:
    cdf = np.cumsum(p[order])
    cut = int(np.searchsorted(cdf, mass, side="left")) + 1  # first prefix reaching mass
    keep = order[:cut]
    q = np.zeros_like(p)
    q[keep] = p[keep]
    return q / _sum(q)


def process_logits(logits, *, repetition_penalty=1.0, presence_penalty=0.0, frequency_penalty=0.0,
                   logit_bias=None, context=(), generated=()) -> np.ndarray:
    z = logits.astype(np.float64, copy=True)
    z[np.isnan(z)] = -np.inf
    for t, b in (logit_bias or {}).items():
        z[t] += np.float64(np.float32(b))
    if repetition_penalty != 1.0:
        prev = np.unique(np.asarray(list(context) + list(generated), dtype=np.int64))
        if len(prev):
            z[prev] = np.where(z[prev] > 0, z[prev] / repetition_penalty, z[prev] * repetition_penalty)
    if presence_penalty or frequency_penalty:
        ids, counts = np.unique(np.asarray(generated, dtype=np.int64), return_counts=True)
        if len(ids):
            z[ids] -= counts * frequency_penalty + presence_penalty
    return z


def distribution(z: np.ndarray, *, temperature, top_k=0, top_p=1.0, min_p=0.0, typical_p=1.0) -> np.ndarray:
    z = z / temperature
    if top_k and top_k < len(z):
        kth = np.partition(z, -top_k)[-top_k]
        z[z < kth] = -np.inf
    finite = z > -np.inf
    p = np.zeros_like(z)
    if z.max() == np.inf:  # only the +inf tokens, equally likely
        p[z == np.inf] = 1.0
    else:
        p[finite] = _exp(z[finite] - z.max())
    p /= _sum(p)
    if typical_p < 1.0:
        nz = np.flatnonzero(p > 0)
        surprisal = -_log(p[nz])
        h = _sum(p[nz] * surprisal)
        key = np.abs(surprisal - h)
        order = nz[np.lexsort((nz, key))]  # by key, ties by id
        p = _keep_prefix(p, order, typical_p)
    if top_p < 1.0:
        nz = np.flatnonzero(p > 0)
        order = nz[np.lexsort((nz, -p[nz]))]  # largest first, ties by id
        p = _keep_prefix(p, order, top_p)
    if min_p > 0.0:
        p = np.where(p >= min_p * p.max(), p, 0.0)
        p /= _sum(p)
    return p


def draw(p: np.ndarray, u: float) -> int:
    """numpy's Generator.choice(len(p), p=p) given its one uniform draw u."""
    cdf = np.cumsum(p)
    cdf /= cdf[-1]
    return int(np.searchsorted(cdf, u, side="right"))


def sample_reference(logits, u, *, temperature=0.0, top_k=0, top_p=1.0, min_p=0.0, typical_p=1.0,
                     repetition_penalty=1.0, presence_penalty=0.0, frequency_penalty=0.0, logit_bias=None,
                     context=(), generated=()) -> int:
    z = process_logits(logits, repetition_penalty=repetition_penalty, presence_penalty=presence_penalty,
                       frequency_penalty=frequency_penalty, logit_bias=logit_bias, context=context,
                       generated=generated)
    if temperature <= 0:
        return int(np.argmax(z))
    return draw(distribution(z, temperature=temperature, top_k=top_k, top_p=top_p, min_p=min_p,
                             typical_p=typical_p), u)


def old_numpy_sample(logits, rng, *, temperature=0.0, top_k=0, top_p=1.0, repetition_penalty=1.0, previous=()):
    """The numpy sampler slmkernels had before the C++ one (same seeds must give the same tokens)."""
    z = logits.astype(np.float64, copy=True)
    if repetition_penalty != 1.0 and len(previous):
        prev = np.unique(np.asarray(previous, dtype=np.int64))
        z[prev] = np.where(z[prev] > 0, z[prev] / repetition_penalty, z[prev] * repetition_penalty)
    if temperature <= 0.0:
        return int(np.argmax(z))
    z /= temperature
    if top_k and top_k < len(z):
        kth = np.partition(z, -top_k)[-top_k]
        z[z < kth] = -np.inf
    p = np.exp(z - z.max())
    p /= p.sum()
    if top_p < 1.0:
        order = np.argsort(-p)
        cdf = np.cumsum(p[order])
        keep = order[: int(np.searchsorted(cdf, top_p) + 1)]
        q = np.zeros_like(p)
        q[keep] = p[keep]
        p = q / q.sum()
    return int(rng.choice(len(p), p=p))
