"""The `slmkernels` command as a user runs it: bad values are one line and exit status 2, prompts
come from an argument, a file or stdin, --json reports counts and timings, Ctrl-C and a closed
pipe end quietly, and `slmkernels chat` is driven through a real pseudo-terminal (pexpect)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

pytest.importorskip("gguf")

from tiny_models import write_tiny_model  # noqa: E402

CMD = [sys.executable, "-P", "-m", "slmkernels"]
TIMEOUT = 120


def sigint_default():
    """Child preexec: SIGINT back to its default, as a terminal gives it. A test run started in the
    background by a non-interactive shell has SIGINT ignored, children inherit that, and Python
    keeps an inherited SIG_IGN (no KeyboardInterrupt), so the Ctrl-C tests would test nothing."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return write_tiny_model(tmp_path_factory.mktemp("cli") / "m.gguf")


def run(*args, input=None, env=None):
    e = dict(os.environ, **(env or {}))
    return subprocess.run(CMD + list(args), input=input, capture_output=True, text=True, timeout=TIMEOUT, env=e)


@pytest.mark.parametrize("args,flag", [
    (["--max-tokens", "-5"], "--max-tokens"),
    (["--max-tokens", "ten"], "--max-tokens"),
    (["--temperature", "nan"], "--temperature"),
    (["--temperature", "inf"], "--temperature"),
    (["--top-p", "0"], "--top-p"),
    (["--min-p", "2"], "--min-p"),
    (["--seed", "-1"], "--seed"),
    (["--threads", "1000"], "--threads"),
    (["--threads", "0"], "--threads"),
    (["--context", "0"], "--context"),
    (["--kv-dtype", "q3"], "--kv-dtype"),
    (["--kv-block-tokens", "0"], "--kv-block-tokens"),
    (["--kv-block-tokens", "4097"], "--kv-block-tokens"),
    (["--repeat-penalty", "0"], "--repeat-penalty"),
])
def test_bad_values_are_one_line(tiny, args, flag):
    r = run("generate", "--model", tiny, "hello", *args)
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and flag in lines[0] and "Traceback" not in r.stderr, r.stderr
    assert r.stdout == ""


def test_kv_block_tokens_reaches_the_model(tiny):
    """--kv-block-tokens (a model flag of generate, chat and serve) is the Model's keyword: the
    default 256 and a larger value clamp to the context rounded up to 16."""
    from slmkernels.cli_args import OneLineParser, add_model_args, load_model

    p = OneLineParser(prog="t")
    add_model_args(p)
    for argv, bt in ((["--model", tiny], 128),  # the file's context: 128
                     (["--model", tiny, "--kv-block-tokens", "48"], 48),
                     (["--model", tiny, "--context", "40", "--kv-block-tokens", "4096"], 48)):
        assert load_model(p.parse_args(argv), "t").cache.block_tokens == bt


def test_prompt_problems(tiny, tmp_path):
    for args, text in [(["generate", "--model", tiny, ""], "prompt is empty"),
                       (["generate", "--model", tiny, "   \n"], "prompt is empty"),
                       (["generate", "--model", tiny, "--context", "8", "x y z " * 10], "--context"),
                       (["generate", "--model", str(tmp_path / "none.gguf"), "hi"], "--model"),
                       (["generate", "--model", tiny, "--file", str(tmp_path / "none.txt")], "--file"),
                       (["generate", "--model", tiny, "--file", tiny, "hi"], "not both")]:
        r = run(*args)
        assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1 and text in r.stderr, (args, r.stderr)
        assert r.stdout == ""
    r = run("generate", "--model", tiny, input="")  # empty stdin
    assert r.returncode == 2 and "prompt is empty" in r.stderr


def test_bad_isa_even_for_info():
    r = run("info", env={"SLMK_ISA": "avx9000"})
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "avx9000" in lines[0] and "scalar" in lines[0], r.stderr


def test_prompt_from_stdin_file_and_json(tiny, tmp_path):
    a = run("generate", "--model", tiny, "--max-tokens", "5", "--json", "hello")
    assert a.returncode == 0, a.stderr
    out = json.loads(a.stdout)
    assert out["generated_tokens"] <= 5 and out["finish_reason"] in ("length", "eos")
    for key in ("text", "prompt_tokens", "prefill_seconds", "decode_tokens_per_s", "first_token_seconds"):
        assert key in out
    b = json.loads(run("generate", "--model", tiny, "--max-tokens", "5", "--json", input="hello").stdout)
    (tmp_path / "p.txt").write_text("hello")
    c = json.loads(run("generate", "--model", tiny, "--max-tokens", "5", "--json", "--file", str(tmp_path / "p.txt")).stdout)
    assert a.stdout and out["text"] == b["text"] == c["text"]
    d = run("generate", "--model", tiny, "--max-tokens", "5", "hello")
    assert d.stdout.rstrip("\n") == out["text"] and f"[{out['finish_reason']}]" in d.stderr


def test_stop_flag(tiny):
    full = json.loads(run("generate", "--model", tiny, "--max-tokens", "12", "--json", "hello").stdout)["text"]
    stop = full[3:6]
    got = json.loads(run("generate", "--model", tiny, "--max-tokens", "12", "--json", "--stop", stop, "hello").stdout)
    assert got["text"] == full[: full.index(stop)] and got["finish_reason"] == "stop"


@pytest.mark.model
def test_ctrl_c_and_closed_pipe(smollm2_path):
    args = CMD + ["generate", "--model", str(smollm2_path), "--max-tokens", "400", "Count from 1 to 1000:"]
    # | head: the reader goes away after the first bytes
    with subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, preexec_fn=sigint_default) as p:
        p.stdout.read(8)
        p.stdout.close()
        err = p.stderr.read().decode()
        assert p.wait(TIMEOUT) == 141 and "Traceback" not in err and "Error" not in err, err
    # Ctrl-C mid-generation: one line, status 130
    with subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, preexec_fn=sigint_default) as p:
        p.stdout.read(8)
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=TIMEOUT)
        assert p.returncode == 130 and "Traceback" not in err.decode(), err
        assert err.decode().strip().splitlines()[-1] == "slmkernels: interrupted"


# ---- slmkernels chat in a real terminal ----
pexpect = pytest.importorskip("pexpect")


def spawn_chat(path, *args):
    child = pexpect.spawn(sys.executable, ["-P", "-m", "slmkernels", "chat", "--model", str(path), *args],
                          encoding="utf-8", timeout=TIMEOUT, dimensions=(40, 200),
                          preexec_fn=sigint_default)
    child.expect("> ")
    return child


def test_chat_session_in_a_terminal(tiny):
    child = spawn_chat(tiny, "--max-tokens", "4", "--stats", "--system", "be brief")
    child.sendline("hello")
    child.expect(r"\[\w+\] prefill: (\d+) tokens")
    first_prompt = int(child.match.group(1))
    child.expect("> ")
    child.sendline("again")
    child.expect(r"\[\w+\] prefill: (\d+) tokens \((\d+) reused\)")  # the second turn reuses the first
    assert int(child.match.group(1)) > first_prompt and int(child.match.group(2)) >= first_prompt - 1
    child.expect("> ")
    child.sendline("/reset")
    child.expect("conversation cleared")
    child.expect("> ")
    child.sendline("hello")
    child.expect(r"prefill: (\d+) tokens")
    assert int(child.match.group(1)) == first_prompt  # history gone: the first turn's prompt again
    child.expect("> ")
    child.sendintr()  # Ctrl-C at the prompt: a new prompt, not an exit
    child.expect("> ")
    child.sendeof()  # Ctrl-D quits
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0


@pytest.mark.model
def test_chat_ctrl_c_stops_the_answer_not_the_program(smollm2_path):
    child = spawn_chat(smollm2_path, "--max-tokens", "400")
    child.sendline("Write a very long story about a dragon.")
    child.expect("dragon.\r\n")  # the terminal's echo of the line
    child.expect(r"\w+ \w+ \w+")  # the answer is streaming
    time.sleep(0.3)
    child.sendintr()
    child.expect(r"\[stopped\]")
    child.expect("> ")
    child.sendline("Say OK.")
    child.expect(r"\S")
    child.expect("> ")
    assert child.isalive()
    child.sendline("/exit")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0
