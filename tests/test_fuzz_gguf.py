"""The loader against the fuzz corpus (tests/fuzz/), and a short atheris run.

Every seed (tests/fuzz/corpus/: tiny valid models and broken files, written by
tests/fuzz/make_corpus.py) and every kept crash input (tests/fuzz/crashes/) goes through the
fuzz target itself, tests/fuzz/fuzz_gguf.py: `Model.from_gguf`, a forward step when it loads,
then the tokenizer and chat-template readers. A file either loads or is rejected with a
GGUFError (TemplateError for a template); any other exception fails the test. Then atheris
mutates the corpus for a bounded time (SLMK_FUZZ_SECONDS, default 20; skipped with a reason
when atheris is not installed).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("gguf")

FUZZ = Path(__file__).resolve().parent / "fuzz"
sys.path.insert(0, str(FUZZ))
import fuzz_gguf  # noqa: E402

CORPUS = sorted((FUZZ / "corpus").glob("*"))
CRASHES = sorted(p for p in (FUZZ / "crashes").glob("*") if p.name != "README.md")
# seeds the loader must accept (the tokenizer of model_bad_tokenizer is refused, not the model)
LOADS = {p.name for p in CORPUS if p.name.startswith("valid_")} | {"model_bad_tokenizer.gguf"}


def test_corpus_is_small_and_has_both_kinds():
    assert sum(p.stat().st_size for p in CORPUS) < 1 << 20
    assert len(LOADS) >= 8 and len(CORPUS) - len(LOADS) >= 60


@pytest.mark.parametrize("path", CORPUS, ids=[p.name for p in CORPUS])
def test_corpus_file_loads_or_is_rejected(path):
    want = "loaded" if path.name in LOADS else "rejected"
    assert fuzz_gguf.check_bytes(path.read_bytes()) == want


@pytest.mark.parametrize("path", CRASHES or [None], ids=[p.name for p in CRASHES] or ["none-kept"])
def test_kept_crash_input_is_handled(path):
    """Inputs that once crashed the loader (or raised an undocumented exception), kept as
    regression tests; each now loads or is rejected cleanly."""
    if path is None:
        pytest.skip("no crash inputs kept (tests/fuzz/crashes/ is empty)")
    assert fuzz_gguf.check_bytes(path.read_bytes()) in ("loaded", "rejected")


def test_bounded_atheris_run(tmp_path):
    pytest.importorskip("atheris", reason="atheris is not installed (pip install atheris)")
    import resource
    seconds = int(os.environ.get("SLMK_FUZZ_SECONDS", "20"))
    new = tmp_path / "new"  # libFuzzer adds to the first directory: not the checked-in corpus
    new.mkdir()
    # libFuzzer's RSS is the process's peak (getrusage), which Linux carries over from this
    # process through the spawn and exec: the leak limit is 2 GiB above what we start with
    rss_mb = 2048 + resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
    cmd = [
        sys.executable, str(FUZZ / "fuzz_gguf.py"), str(new), str(FUZZ / "corpus"), str(FUZZ / "crashes"),
        f"-dict={FUZZ / 'gguf.dict'}", f"-max_total_time={seconds}", "-timeout=30", f"-rss_limit_mb={rss_mb}",
        f"-artifact_prefix={tmp_path}/", "-print_final_stats=1",
    ]
    r = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=seconds + 240)
    tail = r.stderr[-3000:]
    crashes = [p.name for p in tmp_path.glob("*") if p.name.startswith(("crash-", "timeout-", "oom-", "leak-"))]
    assert r.returncode == 0 and not crashes, (
        f"the fuzzer found an input the loader does not handle: {crashes}; copy it to "
        f"tests/fuzz/crashes/ and fix the loader\n{tail}"
    )
    m = re.search(r"Done (\d+) runs", r.stderr)
    assert m and int(m.group(1)) >= 100, f"the fuzzer hardly ran\n{tail}"
