"""The agreement check of Model.from_pretrained against a reference's logits (tests/test_hf.py:
transformers; tests/test_hf_phonelm.py: the numpy reference)."""

from __future__ import annotations

import numpy as np

# float32 weights, an f32 KV cache: both sides compute in float32 or better (ours with an
# int8-free float GEMM), differences are rounding only
F32_RTOL = 1e-4
# q8_0 weights and int8 activations per 32-block: measured 2-4% of the largest logit on these
# files (hidden 64: each dot product sums only two blocks)
Q8_RTOL = 0.06


def check_pretrained(directory, want: np.ndarray, ids: list[int]) -> np.ndarray:
    """Loads `directory` as f32 and as q8_0 and checks both against `want` (T, vocab); returns
    the f32 logits. Argmax must agree everywhere in f32, and in q8_0 where the top two logits are
    further apart than twice the q8_0 bound."""
    from slmkernels.model.runtime import Model

    m = Model.from_pretrained(directory, dtype="f32", kv_dtype="f32")
    got = m.forward(m.new_sequence(), ids, all_logits=True)
    scale = np.abs(want).max()
    assert np.abs(got - want).max() <= F32_RTOL * scale
    assert (got.argmax(1) == want.argmax(1)).all()
    q = Model.from_pretrained(directory, dtype="q8_0")
    got_q = q.forward(q.new_sequence(), ids, all_logits=True)
    assert np.abs(got_q - want).max() <= Q8_RTOL * scale
    top2 = np.sort(want, axis=1)[:, -2:]
    clear = (top2[:, 1] - top2[:, 0]) > 2 * Q8_RTOL * scale
    assert (got_q.argmax(1) == want.argmax(1))[clear].all()
    return got
