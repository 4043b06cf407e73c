"""CPU detection, the ISA override, threads, and the `slmkernels info` command."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

import slmkernels as sk
from conftest import ALL_ISAS, SUPPORTED_ISAS


# Subprocesses start in tests/, so `python -c` imports the installed package rather than the
# source folder of the checkout (which has no compiled _core).
HERE = os.path.dirname(os.path.abspath(__file__))


def run_py(code: str, **env) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env={**os.environ, **env}, timeout=120, cwd=HERE
    )


def test_cpu_info_shape():
    info = sk.cpu_info()
    assert info["arch"] in {"x86_64", "aarch64", "unknown"}
    assert info["isa"] == sk.get_isa() and info["isa"] in info["supported_isas"]
    assert info["supported_isas"][-1] == "scalar" and info["best_isa"] == info["supported_isas"][0]
    assert set(info["supported_isas"]) <= set(ALL_ISAS)
    assert info["physical_cores"] >= 1 and info["num_threads"] >= 1
    if info["arch"] == "x86_64" and "avx512_vnni" in info["supported_isas"]:
        assert {"avx512f", "avx512bw", "avx512vl", "avx512dq", "avx512vnni"} <= set(info["features"])


def test_default_isa_is_best_unless_forced():
    if os.environ.get("SLMK_ISA"):
        pytest.skip("SLMK_ISA is set for this run")
    assert sk.get_isa() == sk.cpu_info()["best_isa"]


@pytest.mark.parametrize("name", SUPPORTED_ISAS)
def test_env_override_forces_isa(name):
    r = run_py("import slmkernels as s; print(s.get_isa()); print(s.kernel_names()['dequantize_q4_0'])", SLMK_ISA=name)
    assert r.returncode == 0, r.stderr
    isa, kernel = r.stdout.split()
    assert isa == name
    assert kernel.startswith("dequantize_q4_0_")


def test_env_override_unsupported_is_clear_error():
    missing = [i for i in ALL_ISAS if i not in SUPPORTED_ISAS]
    if not missing:
        pytest.skip("this CPU runs every ISA")
    r = run_py("import slmkernels", SLMK_ISA=missing[0])
    assert r.returncode != 0
    assert f"SLMK_ISA={missing[0]}" in r.stderr and "cannot run" in r.stderr
    r = run_py("import slmkernels", SLMK_ISA="avx9000")
    assert r.returncode != 0 and "not a known ISA" in r.stderr


def test_set_isa_errors_and_round_trip():
    before = sk.get_isa()
    try:
        for name in SUPPORTED_ISAS:
            sk.set_isa(name)
            assert sk.get_isa() == name
    finally:
        sk.set_isa(before)
    with pytest.raises(ValueError, match="unknown ISA"):
        sk.set_isa("sse9")
    missing = [i for i in ALL_ISAS if i not in SUPPORTED_ISAS]
    if missing:
        with pytest.raises(ValueError, match="not supported by this CPU"):
            sk.set_isa(missing[0])
    assert sk.get_isa() == before


def test_threads():
    before = sk.get_num_threads()
    try:
        sk.set_num_threads(3)
        assert sk.get_num_threads() == 3
        sk.set_num_threads(1)
        assert sk.get_num_threads() == 1
    finally:
        sk.set_num_threads(before)
    for bad in (0, -1, 5000):
        with pytest.raises(ValueError, match="num_threads"):
            sk.set_num_threads(bad)
    with pytest.raises(TypeError):
        sk.set_num_threads(2.0)
    assert sk.get_num_threads() == before


def test_default_threads_are_physical_cores():
    r = run_py("import slmkernels as s; i = s.cpu_info(); print(i['num_threads'], i['physical_cores'])")
    n, cores = map(int, r.stdout.split())
    assert n == cores


def test_kernels_release_the_gil():
    """A long dequantize on one Python thread lets another Python thread run meanwhile."""
    import threading
    import time

    import numpy as np

    x = np.random.default_rng(0).standard_normal((512, 4096)).astype(np.float32)
    q = sk.quantize(x, "q6_k")
    ticks = []
    stop = threading.Event()

    def ticker():
        while not stop.is_set():
            ticks.append(time.perf_counter())
            time.sleep(0.001)

    t = threading.Thread(target=ticker)
    t.start()
    try:
        t0 = time.perf_counter()
        while time.perf_counter() - t0 < 0.3:
            sk.quantize(x, "q6_k")  # seconds of C++ work in total
        sk.dequantize(q)
    finally:
        stop.set()
        t.join()
    assert len(ticks) > 20


def ladder(isa: str) -> list:
    """scalar, ..., isa: the rungs whose kernels make isa's table."""
    parent = {i["name"]: i["parent"] for i in sk.isas()}
    chain = [isa]
    while parent[chain[-1]] is not None:
        chain.append(parent[chain[-1]])
    return chain[::-1]


def test_isa_table_is_the_ladder():
    table = sk.isas()
    names = [i["name"] for i in table]
    assert names[0] == "scalar" and table[0]["parent"] is None and len(set(names)) == len(names)
    for pos, i in enumerate(table[1:], 1):
        assert i["parent"] in names[:pos], f"{i['name']}'s parent comes after it"
        assert i["needs"], f"{i['name']} needs no CPU feature beyond its parent's"
    features = set(sk.cpu_info()["features"])
    for i in table:
        # a rung runs here exactly when it and every rung below it find their features
        assert i["supported"] == all(set(j["needs"]) <= features for j in table if j["name"] in ladder(i["name"]))
    # best first: the supported rungs in reverse table order
    assert sk.cpu_info()["supported_isas"] == [i["name"] for i in reversed(table) if i["supported"]]


def test_kernel_registry():
    ks = sk.kernels()
    names = [k["name"] for k in ks]
    assert len(set(names)) == len(names)
    for k in ks:
        tile = f"_{k['tile'][0]}x{k['tile'][1]}" if k["tile"] else ""
        assert k["name"] == k["op"] + (f"_{k['format']}" if k["format"] else "") + tile + "_" + k["isa"]
        assert k["isa"] in ALL_ISAS
        assert (k["min_m"] > 0) == (k["op"] == "gemm_panel")  # only panels have a minimum M
    ops = {(k["op"], k["format"]) for k in ks}
    twins = {(k["op"], k["format"]) for k in ks if k["isa"] == "scalar"}
    # every kernel has its scalar twin: a panel's is the scalar GEMM tile of its format; the peak
    # probes measure the machine and have none
    for op, fmt in ops - twins:
        assert op in ("gemm_panel", "probe_int8", "probe_fp32"), f"{op} {fmt} has no scalar entry"
        if op == "gemm_panel":
            assert ("gemm", fmt) in twins
    # the active entry of each (op, format) is the highest rung of the ladder in use that has one
    rungs = ladder(sk.get_isa())
    for op, fmt in ops:
        mine = [k for k in ks if (k["op"], k["format"]) == (op, fmt) and k["isa"] in rungs]
        active = [k for k in ks if (k["op"], k["format"]) == (op, fmt) and k["active"]]
        expected = max(mine, key=lambda k: rungs.index(k["isa"]))["name"] if mine else None
        assert [k["name"] for k in active] == ([expected] if expected else [])
    assert sk.kernel_names() == {k["op"] + (f"_{k['format']}" if k["format"] else ""): k["name"]
                                 for k in ks if k["active"]}


def test_info_command():
    r = subprocess.run([sys.executable, "-m", "slmkernels", "info", "--kernels"], capture_output=True, text=True,
                       timeout=60, cwd=HERE)
    assert r.returncode == 0, r.stderr
    assert f"isa in use:     {sk.get_isa()}" in r.stdout
    names = {k["name"] for k in sk.kernels()}
    listed = {line.split()[-1]: line.lstrip().startswith("*") for line in r.stdout.splitlines()
              if line.strip() and line.split()[-1] in names}
    assert listed == {k["name"]: k["active"] for k in sk.kernels()}
    r = subprocess.run([sys.executable, "-m", "slmkernels", "nonsense"], capture_output=True, text=True, timeout=60,
                       cwd=HERE)
    assert r.returncode == 2 and "invalid choice" in r.stderr and len(r.stderr.strip().splitlines()) == 1


def test_type_stubs_cover_the_extension():
    """slmkernels/_core.pyi declares every public function and class the extension exports."""
    import ast
    import pathlib

    from slmkernels import _core

    stub = ast.parse((pathlib.Path(sk.__file__).parent / "_core.pyi").read_text())
    declared = {n.name for n in stub.body if isinstance(n, (ast.FunctionDef, ast.ClassDef))}
    exported = {n for n in dir(_core) if not n.startswith("__")}
    missing = sorted(n for n in exported - declared if not n.startswith("_") or n in ("_probe_peak",))
    assert not missing, f"_core.pyi lacks {missing}"
