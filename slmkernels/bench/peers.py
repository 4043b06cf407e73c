"""Peers: what a user would run instead. Each is optional; a missing one is a skipped row."""

from __future__ import annotations

import os
from typing import Optional, Tuple


def torch_or_reason():
    """(torch module, None) or (None, why not)."""
    try:
        import torch  # noqa: PLC0415
    except Exception as e:  # ImportError, or a broken install
        return None, f"skipped: PyTorch not installed ({type(e).__name__})"
    return torch, None


def set_peer_threads(threads: int) -> None:
    """Give the peers the same thread count as our kernels (numpy's BLAS via threadpoolctl)."""
    torch, _ = torch_or_reason()
    if torch is not None:
        torch.set_num_threads(threads)
    try:
        from threadpoolctl import threadpool_limits  # noqa: PLC0415

        threadpool_limits(threads)
    except Exception:
        pass  # numpy's BLAS keeps its own default (OPENBLAS_NUM_THREADS)


def default_model() -> Tuple[Optional[str], str]:
    """(SmolLM2-135M-Instruct.Q4_1.gguf, "") from $SLMK_MODEL_DIR or a shared/models folder in a
    parent of the working directory or of the installed package, size and sha256 checked; or
    (None, why not)."""
    from ..model.files import SMOLLM2, find_model  # noqa: PLC0415

    path, why = find_model(SMOLLM2, anchors=[os.path.dirname(os.path.abspath(__file__))])
    return (str(path) if path else None), why

