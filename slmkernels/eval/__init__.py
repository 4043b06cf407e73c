"""``slmkernels eval``: perplexity and KL divergence of a model's next-token distributions over a
text, against a float64 forward pass over the same dequantized weights (reference.py).

The protocol is llama-perplexity's (tools/perplexity/perplexity.cpp in llama.cpp): the text is
tokenized once (with BOS when the file asks for it), cut into chunks of ``ctx`` tokens, each chunk
runs from an empty cache with its first token replaced by BOS, and only the second half of each
chunk is scored (positions ctx/2 .. ctx-2, predicting the next token), so every scored token has
at least ctx/2 tokens of context. Per scored token, with P the reference's distribution and Q the
candidate's (llama.cpp's --kl-divergence statistics):

    KLD = sum_v P(v) (log P(v) - log Q(v))       (every v: llama.cpp drops log P < -16)
    top-1 agreement: argmax Q == argmax P
    dp  = Q(next) - P(next)                       (the probability of the actual next token)
    PPL = exp(mean(-log Q(next)))

Every candidate (ours, ours in other modes, llama.cpp through its Python binding) reads the same
token ids, so tokenization never enters the comparison.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = ["Stats", "log_softmax", "chunks"]


def log_softmax(z: np.ndarray) -> np.ndarray:
    """float64 log-softmax over the last axis."""
    z = np.asarray(z, dtype=np.float64)
    z = z - z.max(axis=-1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))


def chunks(ids: list[int], ctx: int, bos: int | None, limit: int | None = None) -> list[np.ndarray]:
    """The text's token ids cut into whole chunks of ctx tokens, each starting with BOS if given."""
    n = len(ids) // ctx
    if limit:
        n = min(n, limit)
    out = []
    for i in range(n):
        c = np.array(ids[i * ctx : (i + 1) * ctx], dtype=np.int64)
        if bos is not None:
            c[0] = bos
        out.append(c)
    return out


@dataclass
class Stats:
    """Per-token statistics of one candidate against the reference, accumulated over chunks."""
    kld: list = field(default_factory=list)
    dp: list = field(default_factory=list)
    nll: list = field(default_factory=list)
    nll_ref: list = field(default_factory=list)
    same_top: list = field(default_factory=list)

    def add(self, logp_ref: np.ndarray, logits: np.ndarray, targets: np.ndarray) -> None:
        """logp_ref (n, vocab) float64 reference log-probabilities; logits (n, vocab) the
        candidate's; targets (n,) the actual next tokens."""
        logq = log_softmax(logits)
        p = np.exp(logp_ref)
        rows = np.arange(len(targets))
        self.kld.append((p * (logp_ref - logq)).sum(axis=1))
        self.dp.append(np.exp(logq[rows, targets]) - p[rows, targets])
        self.nll.append(-logq[rows, targets])
        self.nll_ref.append(-logp_ref[rows, targets])
        self.same_top.append(np.argmax(logq, axis=1) == np.argmax(logp_ref, axis=1))

    def summary(self) -> dict:
        kld, dp = np.concatenate(self.kld), np.concatenate(self.dp)
        nll, nll_ref = np.concatenate(self.nll), np.concatenate(self.nll_ref)
        top = np.concatenate(self.same_top)
        n = len(kld)
        sem = lambda v: float(v.std(ddof=1) / np.sqrt(len(v))) if len(v) > 1 else float("nan")  # noqa: E731
        return {
            "tokens": n,
            "ppl": float(np.exp(nll.mean())),
            "ppl_ref": float(np.exp(nll_ref.mean())),
            "ln_ppl_ratio": float((nll - nll_ref).mean()),
            "ln_ppl_ratio_err": sem(nll - nll_ref),
            "kld_mean": float(kld.mean()),
            "kld_err": sem(kld),
            "kld_median": float(np.median(kld)),
            "kld_p99": float(np.percentile(kld, 99)),
            "kld_max": float(kld.max()),
            "top1": float(top.mean()),
            "top1_err": float(np.sqrt(top.mean() * (1 - top.mean()) / max(n - 1, 1))),
            "dp_mean": float(dp.mean()),
            "dp_rms": float(np.sqrt((dp * dp).mean())),
            "dp_p1": float(np.percentile(dp, 1)),
            "dp_p99": float(np.percentile(dp, 99)),
            "dp_max_abs": float(np.abs(dp).max()),
        }
