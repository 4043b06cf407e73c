"""The model area's pieces: the synthetic Q4_K_M writer (read back by our reader and by the gguf
package, run by Model), llama-bench's tests on a tiny synthetic file, and `slmkernels eval`'s
statistics and float64 reference."""

from __future__ import annotations

import json

import numpy as np
import pytest

import slmkernels as sk
from slmkernels.bench import synthetic
from slmkernels.cli import main
from slmkernels.eval import Stats, chunks, log_softmax

# Llama-3.2-1B's structure at toy size: 8 layers (so use_more_bits picks layers 0, 4, 7 and the
# n/8 edges), GQA 4/2, K-quant widths (multiples of 256), a vocabulary holding the special ids.
TOY = dict(n_layers=8, hidden=256, n_heads=4, n_kv_heads=2, head_dim=64, ffn=512, vocab=512, rope_base=500000.0,
           eps=1e-5, context=4096)


@pytest.fixture(scope="module")
def toy_file(tmp_path_factory):
    return synthetic.write_q4_k_m(str(tmp_path_factory.mktemp("synth") / "toy.gguf"), TOY)


def test_q4_k_m_recipe_follows_llama_quant():
    plan = {name: fmt for name, fmt, _ in synthetic.tensor_plan(synthetic.LLAMA_1B)}
    more_bits = [i for i in range(16) if plan[f"blk.{i}.attn_v.weight"] == "q6_k"]
    assert more_bits == [0, 1, 4, 7, 10, 13, 14, 15]  # i < n/8, i >= 7n/8, (i - n/8) % 3 == 2
    assert all(plan[f"blk.{i}.ffn_down.weight"] == plan[f"blk.{i}.attn_v.weight"] for i in range(16))
    assert plan["token_embd.weight"] == "q6_k" and plan["blk.3.ffn_up.weight"] == "q4_k"
    assert "output.weight" not in plan  # tied head


def test_synthetic_file_reads_back(toy_file):
    gguf = pytest.importorskip("gguf")
    ours = sk.Model.from_gguf(toy_file, context=64)
    theirs = gguf.GGUFReader(toy_file)  # an independent reader of our writer's bytes
    names = {t.name: t for t in theirs.tensors}
    for name, fmt, shape in synthetic.tensor_plan(TOY):
        t = names[name]
        assert t.tensor_type.name.lower() == fmt and tuple(int(d) for d in reversed(t.shape)) == shape
        assert ours.reader.tensors[name].type_name.lower() == fmt
    np.testing.assert_array_equal(np.asarray(names["rope_freqs.weight"].data),
                                  synthetic.llama3_freq_factors(64, TOY["rope_base"]))
    assert ours.config.tied_embeddings and ours.config.vocab == TOY["vocab"]
    a = ours.new_sequence()
    ids = [3, 100, 7, 400, 9]
    whole = ours.forward(a, ids, all_logits=True)
    assert whole.shape == (5, TOY["vocab"]) and np.isfinite(whole).all()


def test_llama3_freq_factors_bands():
    f = synthetic.llama3_freq_factors(64, 500000.0)
    assert f[0] == 1.0 and f[-1] == 32.0 and np.all(np.diff(f) >= 0)  # high frequencies kept, low ones divided


def test_bench_model_rows_on_the_toy_file(capsys, toy_file, tmp_path):
    out_json = tmp_path / "m.json"
    rc = main(["bench", "model", "--model", toy_file, "--depth", "0,16", "--n-prompt", "8", "--n-gen", "3",
               "--model-threads", "1,2", "--model-reps", "2", "--bandwidth-mib", "16", "--peak-seconds", "0.02",
               "--model-act", "q8x2-head,q8x2", "--json", str(out_json)])
    out, err = capsys.readouterr()
    assert rc == 0, err
    all_rows = json.loads(out_json.read_text())["rows"]
    assert len([r for r in all_rows if r["impl"] == "slmkernels act=q8x2" and r["status"] == "ok"]) == 8
    assert sk.get_act_mode() == "q8x2-head"  # restored (the default)
    rows = [r for r in all_rows if r["impl"] == "slmkernels"]
    got = {(r["params"]["test"], r["params"]["depth"], r["threads"]) for r in rows}
    assert got == {(t, d, n) for t in ("pp8", "tg3") for d in (0, 16) for n in (1, 2)}
    for r in rows:
        assert r["status"] == "ok" and r["err_ratio"] == 0.0 and r["reps"] == 2
        assert r["rate"] == pytest.approx(r["flops"] / r["seconds"]) and r["frac_of_limit"] > 0
        assert ("bandwidth" in r["limit"]) == r["params"]["test"].startswith("tg")
    costs = rows[0]["params"]
    assert costs["bytes_per_token"] > 0
    assert "| toy.gguf | tg3 | 16 | 2 |" in out  # the llama-bench summary


def test_eval_statistics_match_definitions():
    rng = np.random.default_rng(0)
    ref = rng.standard_normal((5, 11))
    cand = ref + 0.1 * rng.standard_normal((5, 11))
    tgt = rng.integers(0, 11, 5)
    s = Stats()
    s.add(log_softmax(ref), cand, tgt)
    p, q = np.exp(log_softmax(ref)), np.exp(log_softmax(cand))
    out = s.summary()
    assert out["kld_mean"] == pytest.approx(np.mean(np.sum(p * np.log(p / q), axis=1)))
    assert out["top1"] == np.mean(ref.argmax(1) == cand.argmax(1))
    assert out["ppl"] == pytest.approx(np.exp(-np.mean(np.log(q[np.arange(5), tgt]))))
    assert out["dp_mean"] == pytest.approx(np.mean(q[np.arange(5), tgt] - p[np.arange(5), tgt]))
    s2 = Stats()
    s2.add(log_softmax(ref), ref.astype(np.float32), tgt)  # the reference itself: no divergence
    assert s2.summary()["kld_mean"] == pytest.approx(0.0, abs=1e-6)
    c = chunks(list(range(10)), 4, bos=99)
    assert [x.tolist() for x in c] == [[99, 1, 2, 3], [99, 5, 6, 7]]


def test_eval_reference_matches_the_model(toy_file, tmp_path, capsys):
    """Our quantized forward pass is close to the float64 reference (small KLD, same top-1 mostly),
    and the command prints the table and writes its JSON."""
    text = tmp_path / "t.txt"
    text.write_text("".join(chr(97 + i % 26) for i in range(200)))
    rc = main(["eval", "--model", toy_file, "--text", str(text), "--ctx", "32", "--chunks", "2",
               "--json", str(tmp_path / "e.json")])
    out, err = capsys.readouterr()
    assert rc == 0, err
    doc = json.loads((tmp_path / "e.json").read_text())
    (name, s), = doc["candidates"].items()
    assert name.startswith("slmkernels") and s["tokens"] == doc["chunks"] * 15
    assert s["kld_mean"] < 0.05 and s["top1"] > 0.5
    assert "mean KLD" in out


@pytest.mark.parametrize("variant", ["toy", "qwen2", "granite"])
def test_eval_reference_matches_the_test_reference(toy_file, tmp_path, variant):
    """The eval's float64 forward pass (our reader, our dequantize) equals the independent numpy
    reference of tests/model_reference.py (the gguf package's reader and dequantize) to float64
    rounding: Llama-3 rope factors and a Q4_K_M mix (toy), neox RoPE with q/k/v biases (qwen2),
    granite's multipliers."""
    from model_reference import ReferenceModel as TestReference
    from tiny_models import write_tiny_model

    from slmkernels.eval.reference import ReferenceModel

    path = toy_file if variant == "toy" else write_tiny_model(tmp_path / f"{variant}.gguf", variant, fmt="q8_0")
    m = sk.Model.from_gguf(path, context=64)
    ids = np.random.default_rng(1).integers(0, m.config.vocab, 24)
    ours = ReferenceModel(m.reader, m.config).forward(ids, rows=slice(8, 24))
    theirs = TestReference(path).forward(ids)[8:24]
    np.testing.assert_allclose(ours, theirs, rtol=1e-9, atol=1e-9 * np.abs(theirs).max())


@pytest.mark.parametrize("argv, msg", [
    (["--ctx", "7"], "--ctx"),
    (["--chunks", "-1"], "--chunks"),
    (["--llama-python", "/no/such/python"], "not found"),
])
def test_eval_bad_arguments(toy_file, tmp_path, capsys, argv, msg):
    text = tmp_path / "t.txt"
    text.write_text("abc " * 100)
    with pytest.raises(SystemExit) as e:
        main(["eval", "--model", toy_file, "--text", str(text), *argv])
    assert e.value.code == 2 and msg in capsys.readouterr().err
