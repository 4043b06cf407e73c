"""The C++ kernel tests (every ISA variant against its scalar twin), natively and, when the
cross toolchain and qemu are installed (.ci/run installs them), for aarch64 under qemu."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TOOLCHAIN = ROOT / "csrc" / "cmake" / "aarch64-linux-gnu.cmake"


def build_and_ctest(build_dir: Path, *extra: str) -> str:
    if shutil.which("cmake") is None:
        pytest.skip("cmake is not installed")
    gen = ["-G", "Ninja"] if shutil.which("ninja") else []
    cfg = ["cmake", "-S", str(ROOT), "-B", str(build_dir), *gen, "-DSLMK_BUILD_PYTHON=OFF", "-DSLMK_BUILD_TESTS=ON", *extra]
    subprocess.run(cfg, check=True, capture_output=True, text=True, timeout=300)
    b = subprocess.run(
        ["cmake", "--build", str(build_dir), "-j", str(os.cpu_count() or 2)], capture_output=True, text=True, timeout=1200
    )
    assert b.returncode == 0, b.stdout[-4000:] + b.stderr[-4000:]
    r = subprocess.run(["ctest", "--output-on-failure", "-V"], cwd=build_dir, capture_output=True, text=True, timeout=1800)
    assert r.returncode == 0, r.stdout[-8000:] + r.stderr[-4000:]
    return r.stdout


def test_ctest_native(tmp_path_factory):
    out = build_and_ctest(tmp_path_factory.mktemp("ctest-native"))
    assert "0 failed" in out


def test_ctest_aarch64_qemu(tmp_path_factory):
    missing = [t for t in ("aarch64-linux-gnu-g++", "qemu-aarch64") if shutil.which(t) is None]
    if missing:
        pytest.skip(f"{', '.join(missing)} not installed (apt-get install g++-aarch64-linux-gnu qemu-user)")
    out = build_and_ctest(tmp_path_factory.mktemp("ctest-aarch64"), f"-DCMAKE_TOOLCHAIN_FILE={TOOLCHAIN}")
    # qemu -cpu max offers every ARM rung, so every NEON path was compared with the scalar twin.
    assert "supported ISAs: neon_i8mm neon_dotprod neon scalar" in out
    assert "0 failed" in out
