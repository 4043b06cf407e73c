"""`slmkernels bench`: every area runs on tiny shapes, the JSON matches its schema, a wrong kernel
is caught before timing, bad arguments are one-line usage errors, --compare gives per-row ratios."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import slmkernels as sk
from slmkernels import bench
from slmkernels.bench import report
from slmkernels.cli import main

# Tiny and quick: explicit shape (K = 256 fits every block size), no cold working set, a small
# bandwidth probe and short peak probes.
FAST = ["--min-time", "0.01", "--repeat", "2", "--bandwidth-mib", "16", "--peak-seconds", "0.02", "--working-set-mib", "0"]
TINY = ["--shapes", "2x64x256", "--formats", "q4_0,q8_0", *FAST]
# the model area: llama-bench's tests shrunk (one repetition, one thread, a tiny prompt and depth)
MODEL_FAST = ["--depth", "0,8", "--n-prompt", "8", "--n-gen", "2", "--model-threads", "1", "--model-reps", "1"]
TESTS_DIR = Path(__file__).resolve().parent


def run(capsys, *argv):
    rc = main(["bench", *argv])
    out, err = capsys.readouterr()
    return rc, out, err


@pytest.fixture(autouse=True)
def no_faults():
    bench._inject_fault(None)
    yield
    bench._inject_fault(None)


def load_valid(path) -> dict:
    jsonschema = pytest.importorskip("jsonschema")
    doc = json.loads(Path(path).read_text())
    jsonschema.validate(doc, report.SCHEMA)
    return doc


@pytest.mark.parametrize("area", ["gemm", "attention", "kvcache", "ops", "ssm", "model"])
def test_each_area_runs(capsys, tmp_path, area):
    rc, out, err = run(capsys, area, *TINY, *MODEL_FAST, "--json", str(tmp_path / "r.json"))
    assert rc == 0, err
    assert out.splitlines()[0].split()[:3] == ["area", "benchmark", "impl"]
    doc = load_valid(tmp_path / "r.json")
    assert doc["rows"] and {r["area"] for r in doc["rows"]} == {area}
    for r in doc["rows"]:
        assert r["status"] in ("ok", "skipped"), r
        if r["status"] == "ok" and r["impl"] == "slmkernels":
            assert r["err_ratio"] is not None and r["err_ratio"] <= 1 and r["seconds"] > 0
    our = [r for r in doc["rows"] if r["impl"] == "slmkernels"]
    if all(r["status"] == "skipped" for r in our):
        assert "skipped:" in err  # with its reason (not in this build, no --model, ...)


def test_all_json_schema_and_fields(capsys, tmp_path):
    rc, out, err = run(capsys, "all", *TINY, *MODEL_FAST, "--json", str(tmp_path / "all.json"),
                       "--markdown", str(tmp_path / "t.md"))
    assert rc == 0, err
    doc = load_valid(tmp_path / "all.json")
    assert {r["area"] for r in doc["rows"]} == set(bench.AREAS)
    r = next(r for r in doc["rows"] if r["area"] == "gemm" and r["impl"] == "slmkernels" and r["kind"] == "kernel")
    assert r["machine"]["arch"] == sk.cpu_info()["arch"] and r["machine"]["cpu"]
    assert r["isa"] == sk.get_isa() and r["version"] == sk.__version__ and r["git"]
    assert r["threads"] == sk.cpu_info()["physical_cores"]
    # roofline: a bound, its limit and the achieved fraction of it
    assert r["bound"] in ("memory", "compute") and r["frac_of_limit"] > 0
    assert r["gops"] == pytest.approx(r["flops"] / r["seconds"] / 1e9)
    assert doc["limits"]["read_gb_per_s"] > 0 and sk.get_isa() in doc["limits"]["peaks"]
    assert (tmp_path / "t.md").read_text().count("|") > 10
    # the overhead row and the peers are there (a missing peer is a skipped row, not an error)
    assert any(r["kind"] == "overhead" for r in doc["rows"])
    # numpy always; torch rows are there measured, or as "skipped" when torch is not installed
    assert {"numpy", "torch"} <= {r["impl"] for r in doc["rows"] if r["area"] == "gemm"}


def test_rows_reach_every_cache_dtype_and_the_gguf_layout(capsys, tmp_path):
    # decode attention once per KV-cache dtype, each row naming the attn_chunk entry that ran, and
    # streaming rows when a working set is asked for; GEMV on GGUF-layout tensors, cached and not
    fast = [a for a in TINY if a not in ("--working-set-mib", "0")] + ["--working-set-mib", "16", "--no-peers"]
    rc, out, err = run(capsys, "attention", "gemm", *fast, "--json", str(tmp_path / "r.json"))
    assert rc == 0, err
    rows = load_valid(tmp_path / "r.json")["rows"]
    active = {k["format"]: k["name"] for k in sk.kernels() if k["op"] == "attn_chunk" and k["active"]}
    for label in ("hot", "streaming"):
        got = {r["format"]: r["kernel"] for r in rows if r["name"] == f"decode attention, {label}"}
        assert got == active, label
    streaming = [r for r in rows if r["name"] == "decode attention, streaming"]
    assert all(r["status"] == "ok" and r["params"]["working_set_bytes"] >= 16 << 20 for r in streaming)
    gguf = [r for r in rows if "gguf layout" in r["name"]]
    assert {r["kind"] for r in gguf} == {"kernel", "overhead"} and all(r["status"] == "ok" for r in gguf)
    assert all(r["params"]["first_call_seconds"] > 0 for r in gguf)


def test_schema_rejects_a_malformed_record(tmp_path, capsys):
    jsonschema = pytest.importorskip("jsonschema")
    rc, _, _ = run(capsys, "gemm", *TINY, "--no-peers", "--json", str(tmp_path / "g.json"))
    doc = json.loads((tmp_path / "g.json").read_text())
    del doc["rows"][0]["seconds"]
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(doc, report.SCHEMA)


def test_injected_fault_is_caught_and_not_timed(capsys, tmp_path):
    bench._inject_fault("matmul")
    rc, out, err = run(capsys, "gemm", *TINY, "--json", str(tmp_path / "f.json"))
    assert rc == 1
    assert "INVALID" in out and "failed validation" in err
    doc = load_valid(tmp_path / "f.json")
    ours = [r for r in doc["rows"] if r["op"] == "matmul"]
    assert ours and all(r["status"] == "invalid" and r["seconds"] is None and r["reps"] == 0 for r in ours)
    assert all(r["err_ratio"] > 1 for r in ours)
    # the peers (other ops) still validate and are timed
    assert all(r["status"] in ("ok", "skipped") for r in doc["rows"] if r["op"] != "matmul")


def test_fault_through_the_environment_in_the_console_script(tmp_path):
    env = {**os.environ, "SLMK_BENCH_FAULT": "rope"}
    r = subprocess.run([sys.executable, "-m", "slmkernels", "bench", "ops", *TINY, "--json", str(tmp_path / "o.json")],
                       capture_output=True, text=True, env=env, cwd=TESTS_DIR, timeout=300)
    assert r.returncode == 1, r.stderr
    rows = json.loads((tmp_path / "o.json").read_text())["rows"]
    assert {r["status"] for r in rows if r["op"] == "rope"} == {"invalid"}
    assert all(r["status"] in ("ok", "skipped") for r in rows if r["op"] != "rope")


def test_isas_side_by_side(capsys, tmp_path):
    before = sk.get_isa()
    isas = ["scalar", before] if before != "scalar" else ["scalar"]
    rc, out, err = run(capsys, "gemm", *TINY, "--no-peers", "--isa", ",".join(isas), "--json", str(tmp_path / "i.json"))
    assert rc == 0, err
    doc = load_valid(tmp_path / "i.json")
    assert {r["isa"] for r in doc["rows"]} == set(isas)
    assert set(doc["limits"]["peaks"]) >= set(isas)
    assert sk.get_isa() == before  # restored afterwards


@pytest.mark.parametrize(
    "argv",
    [
        ["nonsense"],
        ["gemm", "--formats", "q9_9"],
        ["gemm", "--shapes", "2x64"],
        ["gemm", "--shapes", "nosuchmodel"],
        ["gemm", "--isa", "not_an_isa"],
        ["gemm", "--repeat", "0"],
        ["gemm", "--threads", "many"],
        ["gemm", "--compare", "only_one.json"],
        ["gemm", "--rows", "0"],
    ],
)
def test_bad_arguments_are_usage_errors(capsys, argv):
    with pytest.raises(SystemExit) as e:
        main(["bench", *argv])
    assert e.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("slmkernels bench: error: "), lines


@pytest.mark.parametrize("argv,says", [
    (["generation"], "generation needs one model: --model GGUF"),
    (["generation", "--model", "no/such.gguf"], "--model no/such.gguf: no such file"),
    (["generation", "--model", __file__, "--parts", "sampler,speed"], "--parts 'speed': choose from"),
    (["generation", "--model", __file__, "--clients", "1,0"], "--clients: integers in 1..256"),
])
def test_generation_arguments_are_usage_errors(capsys, argv, says):
    with pytest.raises(SystemExit) as e:
        main(["bench", *argv])
    assert e.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("slmkernels bench: error: ") and says in lines[0], lines


def test_generation_sampler_table_on_a_tiny_model(capsys, tmp_path):
    pytest.importorskip("gguf")
    from tiny_models import write_tiny_model  # noqa: PLC0415  (the tests' one tiny-GGUF writer)

    path = write_tiny_model(tmp_path / "m.gguf")
    rc, out, err = run(capsys, "generation", "--model", str(path), "--parts", "sampler", "--repeat", "1")
    assert rc == 0, err
    lines = out.splitlines()
    head = lines.index("| sampler configuration | per token | of a decode step |")
    rows = [line for line in lines[head + 2:] if line.startswith("| ")]
    assert len(rows) == 7 and lines[head + 1] == "| --- | --- | --- |"
    assert all(line.split(" | ")[1].endswith(" us") for line in rows)  # a time for each configuration
    assert "decode step (1 token):" in out and "TTFT" not in out  # only the part asked for


def test_compare(capsys, tmp_path):
    a = tmp_path / "a.json"
    rc, _, _ = run(capsys, "gemm", *TINY, "--no-peers", "--json", str(a))
    assert rc == 0
    doc = json.loads(a.read_text())
    for r in doc["rows"]:
        if r["seconds"]:
            r["seconds"] *= 2.0
    doc["rows"].append({**doc["rows"][0], "name": "only in b"})
    b = tmp_path / "b.json"
    b.write_text(json.dumps(doc))
    rc, out, _ = run(capsys, "--compare", str(a), str(b))
    assert rc == 0
    timed = [r for r in doc["rows"] if r["seconds"] and r["name"] != "only in b"]
    assert sum(1 for line in out.splitlines() if line.split()[-2:] == ["2.000", "0.50x"]) == len(timed)
    assert "(absent)" in out and "geometric mean b/a time 2.000" in out
    with pytest.raises(SystemExit) as e:
        main(["bench", "--compare", str(a), str(tmp_path / "missing.json")])
    assert e.value.code == 2


def test_plot(capsys, tmp_path):
    pytest.importorskip("matplotlib")
    png = tmp_path / "roofline.png"
    rc, _, err = run(capsys, "gemm", *TINY, "--plot", str(png))
    assert rc == 0, err
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_plot_without_matplotlib_says_how_to_get_it(capsys, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib -> ImportError
    rc, _, err = run(capsys, "gemm", *TINY, "--plot", str(tmp_path / "r.png"))
    assert rc == 2 and "pip install 'slmkernels[plot]'" in err
    assert not (tmp_path / "r.png").exists()


def test_llama_cpp_peer_is_skipped_when_missing(capsys, tmp_path):
    rc, out, err = run(capsys, "model", *FAST, *MODEL_FAST, "--llama-python", str(tmp_path / "no-python"),
                       "--json", str(tmp_path / "m.json"))
    assert rc == 0
    rows = json.loads((tmp_path / "m.json").read_text())["rows"]
    peer = [r for r in rows if r["impl"] == "llama.cpp"]
    assert peer and all(r["status"] == "skipped" and "not found" in r["note"] for r in peer)


def test_a_new_case_is_one_function(capsys, tmp_path):
    """Registering a case is all it takes; one needing an API the build lacks is a skipped row."""
    import numpy as np

    @bench.case("ops")
    def negate(ctx):
        x = np.arange(8, dtype=np.float32)
        yield bench.Bench(area="ops", name="negate", op="negate", run=lambda: -x,
                          check=lambda got: float(np.abs(got + x).max()), flops=8, bytes=64, compute="fp32")

    @bench.case("ops", requires=("no_such_kernel",))
    def future(ctx):
        raise AssertionError("must not run")

    try:
        rc, out, err = run(capsys, "ops", *TINY, "--json", str(tmp_path / "n.json"))
        rows = json.loads((tmp_path / "n.json").read_text())["rows"]
    finally:
        bench.REGISTRY["ops"][:] = [c for c in bench.REGISTRY["ops"] if c.name not in ("negate", "future")]
    assert rc == 0, err
    assert [r["status"] for r in rows if r["name"] == "negate"] == ["ok"]
    assert [r["status"] for r in rows if r["name"] == "future"] == ["skipped"]


def test_info_still_works(capsys):
    assert main(["info", "--kernels"]) == 0
    assert "isa in use" in capsys.readouterr().out


def test_update_readme_rewrites_only_the_marked_section(capsys, tmp_path):
    script = TESTS_DIR.parent / "bench" / "update_readme.py"
    if not script.exists():
        pytest.skip("bench/update_readme.py is not beside the tests")
    rc, _, _ = run(capsys, "gemm", *TINY, "--no-peers", "--json", str(tmp_path / "g.json"))
    readme = tmp_path / "README.md"
    readme.write_text("# x\n\nbefore\n\n<!-- bench:begin -->\nold table\n<!-- bench:end -->\n\nafter\n")
    r = subprocess.run([sys.executable, str(script), "--from-json", str(tmp_path / "g.json"), "--readme", str(readme)],
                       capture_output=True, text=True, cwd=TESTS_DIR, timeout=120)
    assert r.returncode == 0, r.stderr
    text = readme.read_text()
    assert "old table" not in text and text.startswith("# x\n\nbefore\n") and text.endswith("after\n")
    assert "| gemm | gemm matmul | slmkernels | q4_0 | 2x64x256 |" in text
    assert str(tmp_path) not in text and "--json g.json" in text  # the command names files, not this machine's paths
    r = subprocess.run([sys.executable, str(script), "--from-json", str(tmp_path / "g.json"), "--readme", str(readme),
                        "--check"], cwd=TESTS_DIR, timeout=120)
    assert r.returncode == 0  # regenerating from the same run changes nothing


def test_bandwidth_probe_reads_whole_huge_pages():
    # from 4 MiB on the probe's buffer is whole 2 MiB pages (as the packed weights are); below,
    # whole 4 KiB pages; the checksum of what was read is validated inside the probe
    assert sk._core._probe_read_bandwidth((5 << 20) + 123, 1)["bytes"] == 4 << 20
    assert sk._core._probe_read_bandwidth((1 << 20) + 123, 1)["bytes"] == 1 << 20


def test_read_probe_keeps_its_buffer_and_validates():
    p = sk._core._ReadProbe((5 << 20) + 123)
    assert p.bytes == 4 << 20
    first, again = p.measure(1), p.measure(2)
    assert first["bytes"] == again["bytes"] == 4 << 20 and first["gb_per_s"] > 0 and again["gb_per_s"] > 0
    with pytest.raises(ValueError):
        sk._core._ReadProbe(100)
    with pytest.raises(ValueError):
        p.measure(0)


def test_cold_gemv_rows_are_placed_against_their_own_probe(capsys, tmp_path):
    # a cold GEMV row (weights cycled through a working set) takes the read bandwidth between its
    # own timed samples and its fraction of the limit is against that; a hot row keeps the run's
    rc, _, err = run(capsys, "gemm", "--shapes", "1x64x256", "--formats", "q4_0", "--no-peers",
                     *[a for a in FAST if a not in ("--working-set-mib", "0")], "--working-set-mib", "4",
                     "--json", str(tmp_path / "r.json"))
    assert rc == 0, err
    doc = load_valid(tmp_path / "r.json")
    cold = [r for r in doc["rows"] if r["impl"] == "slmkernels" and r["kind"] == "kernel" and r["shape"] == "1x64x256"]
    assert len(cold) == 2  # packed, and GGUF layout packed once
    for row in cold:
        bw = row["params"]["read_gb_per_s"]
        assert bw > 0 and bw != doc["limits"]["read_gb_per_s"]
        # which limit binds depends on this host's measured peak (a 4 MiB set can read from L3
        # fast enough to make the row compute-bound); the row's own probe decides either way
        peak = doc["limits"]["peaks"].get(row["isa"], {}).get("int8", 0.0)
        if not peak or row["intensity"] < peak / bw:
            assert row["limit"] == "read bandwidth" and row["limit_value"] == bw
            assert row["frac_of_limit"] == pytest.approx(row["gb_per_s"] / bw)
        else:
            assert row["limit"] == "int8 peak" and row["limit_value"] == peak
