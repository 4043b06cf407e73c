"""The C++ kernel tests (every ISA variant against its scalar twin), natively and, when the
cross toolchain and qemu are installed (.ci/run installs them), for aarch64 under qemu.

With SLMK_SANITIZE set (.ci/sanitize sets it to 1), both runs use AddressSanitizer +
UndefinedBehaviorSanitizer (CMake option SLMK_SANITIZE); any report aborts the test binary, so
ctest fails. Natively LeakSanitizer runs too. Under qemu-user it cannot (it stops the process's
threads through ptrace-like calls that qemu does not emulate), so the aarch64 run has leak
checks off; ASan itself works there, linked dynamically against the cross sysroot.
SLMK_CTEST_BUILD_DIR names a configured, built tree whose native tests to run instead of
building them (.ci/sanitize: the tree it built the sanitized extension in)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TOOLCHAIN = ROOT / "csrc" / "cmake" / "aarch64-linux-gnu.cmake"
SANITIZE = os.environ.get("SLMK_SANITIZE", "").strip().lower() not in ("", "0", "off", "no", "false")


def tool_env(emulated: bool = False) -> dict:
    """The environment for cmake, the compiler and ctest: without the job's LD_PRELOAD of the
    ASan runtime (meant for the Python process only; the sanitized test binaries link their own
    runtime, and an x86-64 preload would break the aarch64 binaries under qemu)."""
    env = dict(os.environ)
    env.pop("LD_PRELOAD", None)
    if SANITIZE:
        # Later options win, so the job's own (log_path, ...) stay. Natively, leak checks on.
        # Under qemu: no LeakSanitizer (see above), and no detect_stack_use_after_return, whose
        # fake stack frames cost nothing natively but make test_attention 15 s -> many minutes.
        extra = "detect_leaks=0:detect_stack_use_after_return=0" if emulated else "detect_leaks=1"
        env["ASAN_OPTIONS"] = ":".join(o for o in (env.get("ASAN_OPTIONS"), extra) if o)
    return env


def build_and_ctest(build_dir: Path, *extra: str, sanitizers: str | None = None, emulated: bool = False) -> str:
    if shutil.which("cmake") is None:
        pytest.skip("cmake is not installed")
    gen = ["-G", "Ninja"] if shutil.which("ninja") else []
    san = [f"-DSLMK_SANITIZE={sanitizers}"] if sanitizers else []
    cfg = ["cmake", "-S", str(ROOT), "-B", str(build_dir), *gen, "-DSLMK_BUILD_PYTHON=OFF", "-DSLMK_BUILD_TESTS=ON",
           *san, *extra]
    env = tool_env(emulated)
    c = subprocess.run(cfg, capture_output=True, text=True, timeout=300, env=env)
    assert c.returncode == 0, c.stdout[-4000:] + c.stderr[-4000:]
    b = subprocess.run(
        ["cmake", "--build", str(build_dir), "-j", str(os.cpu_count() or 2)], capture_output=True, text=True, timeout=1200,
        env=env,
    )
    assert b.returncode == 0, b.stdout[-4000:] + b.stderr[-4000:]
    r = subprocess.run(["ctest", "--output-on-failure", "-V"], cwd=build_dir, capture_output=True, text=True, timeout=1800,
                       env=env)
    assert r.returncode == 0, r.stdout[-8000:] + r.stderr[-4000:]
    if sanitizers:
        # halt_on_error/-fno-sanitize-recover make any report fatal; this also catches a report
        # printed by a runtime that was told to recover.
        assert not any(m in r.stdout for m in ("runtime error:", "ERROR: AddressSanitizer", "ERROR: LeakSanitizer")), \
            r.stdout[-8000:]
    return r.stdout


def test_ctest_native(tmp_path_factory):
    prebuilt = os.environ.get("SLMK_CTEST_BUILD_DIR")
    if prebuilt:
        # .ci/sanitize built the extension and these tests in one sanitized tree: run them there
        # rather than compiling the kernels a second time.
        r = subprocess.run(["ctest", "--output-on-failure", "-V"], cwd=prebuilt, capture_output=True, text=True,
                           timeout=1800, env=tool_env())
        assert r.returncode == 0, r.stdout[-8000:] + r.stderr[-4000:]
        assert "test_gemm" in r.stdout and "tests passed" in r.stdout, r.stdout[-4000:]
        out = r.stdout
    else:
        out = build_and_ctest(tmp_path_factory.mktemp("ctest-native"), sanitizers="address,undefined" if SANITIZE else None)
    assert "0 failed" in out


def test_ctest_aarch64_qemu(tmp_path_factory):
    missing = [t for t in ("aarch64-linux-gnu-g++", "qemu-aarch64") if shutil.which(t) is None]
    if missing:
        pytest.skip(f"{', '.join(missing)} not installed (apt-get install g++-aarch64-linux-gnu qemu-user)")
    out = build_and_ctest(tmp_path_factory.mktemp("ctest-aarch64"), f"-DCMAKE_TOOLCHAIN_FILE={TOOLCHAIN}",
                          sanitizers="address,undefined" if SANITIZE else None, emulated=True)
    # qemu -cpu max offers every ARM rung, so every NEON path was compared with the scalar twin.
    assert "supported ISAs: neon_i8mm neon_dotprod neon scalar" in out
    assert "0 failed" in out
