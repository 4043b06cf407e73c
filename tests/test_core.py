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


def test_info_command():
    r = subprocess.run([sys.executable, "-m", "slmkernels", "info", "--kernels"], capture_output=True, text=True,
                       timeout=60, cwd=HERE)
    assert r.returncode == 0, r.stderr
    assert f"isa in use:     {sk.get_isa()}" in r.stdout
    assert "dequantize_q4_k" in r.stdout
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
