"""Every `slmkernels` subcommand, not only `generate` (tests/test_cli.py): a bad flag value is one
line on stderr naming the flag and what it allows, exit status 2, nothing on stdout, and nothing
loaded or started (the server never binds, the bench never measures)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

pytest.importorskip("gguf")

from tiny_models import write_tiny_model  # noqa: E402

CMD = [sys.executable, "-P", "-m", "slmkernels"]
NCPU = os.cpu_count() or 1


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return write_tiny_model(tmp_path_factory.mktemp("cli") / "m.gguf")


@pytest.fixture(scope="module")
def text(tmp_path_factory):
    p = tmp_path_factory.mktemp("txt") / "t.txt"
    p.write_text("hello world " * 50)
    return str(p)


CASES = [
    # (subcommand and its other arguments, bad flag and value, what the line must name)
    (["chat", "--model", "{tiny}"], ["--max-tokens", "-1"], "--max-tokens: must be an integer in 0.."),
    (["chat", "--model", "{tiny}"], ["--temperature", "nan"], "--temperature: must be a finite number"),
    (["chat", "--model", "{tiny}"], ["--seed", "-1"], "--seed: must be an integer in 0.."),
    (["chat", "--model", "{tiny}"], ["--threads", "1000"], f"--threads: must be an integer in 1..{NCPU}"),
    (["serve", "--model", "{tiny}"], ["--threads", "1000"], f"--threads: must be an integer in 1..{NCPU}"),
    (["serve", "--model", "{tiny}"], ["--parallel", "0"], "--parallel: must be an integer in 1..256"),
    (["serve", "--model", "{tiny}"], ["--port", "70000"], "--port: must be an integer in 0..65535"),
    (["serve", "--model", "{tiny}"], ["--context", "-1"], "--context: must be an integer in 1.."),
    (["serve", "--model", "{tiny}"], ["--kv-block-tokens", "0"], "--kv-block-tokens: must be an integer in 1..4096"),
    (["bench", "gemm"], ["--threads", "1000"], f"--threads: must be an integer in 1..{NCPU}"),
    (["bench", "gemm"], ["--repeat", "0"], "--repeat: must be an integer in 1..1000000"),
    (["eval", "--model", "{tiny}", "--text", "{text}"], ["--threads", "1000"], f"--threads: must be an integer in 1..{NCPU}"),
    (["eval", "--model", "{tiny}", "--text", "{text}"], ["--threads", "0"], f"--threads: must be an integer in 1..{NCPU}"),
    (["eval", "--model", "{tiny}", "--text", "{text}"], ["--ctx", "7"], "--ctx: must be an integer in 8.."),
    (["eval", "--model", "{tiny}", "--text", "{text}"], ["--ctx", "9"], "--ctx: must be an even integer in 8.."),
    (["eval", "--model", "{tiny}", "--text", "{text}"], ["--chunks", "-1"], "--chunks: must be an integer >= 0"),
]


@pytest.mark.parametrize("base,bad,says", CASES, ids=[f"{c[0][0]}{c[1][0]}={c[1][1]}" for c in CASES])
def test_bad_value_is_one_line_and_exit_2(tiny, text, base, bad, says):
    args = [a.format(tiny=tiny, text=text) for a in base] + bad
    r = subprocess.run(CMD + args, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 2 and len(lines) == 1 and says in lines[0], r.stderr
    assert f"got '{bad[1]}'" in lines[0] or bad[1] in lines[0]
    assert r.stdout == ""
