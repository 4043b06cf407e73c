"""The C API, built with CMake against the installed package (find_package(slmkernels))."""

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

import slmkernels as sk

HERE = Path(__file__).parent
README = HERE.parent / "README.md"


def cmake() -> str:
    exe = shutil.which("cmake")
    if exe is None:
        pytest.skip("cmake is not installed")
    if shutil.which("cc") is None and shutil.which("gcc") is None:
        pytest.skip("no C compiler")
    return exe


def build_and_run(src_dir: Path, build_dir: Path, target: str) -> str:
    exe = cmake()
    # the compiler runs without .ci/sanitize's preloaded ASan runtime; the program (linked to the
    # sanitized library there) keeps it
    env = {k: v for k, v in os.environ.items() if k != "LD_PRELOAD"}
    subprocess.run([exe, "-S", str(src_dir), "-B", str(build_dir), f"-Dslmkernels_DIR={sk.get_cmake_dir()}",
                    "-DCMAKE_BUILD_TYPE=Release"], check=True, capture_output=True, text=True, env=env)
    subprocess.run([exe, "--build", str(build_dir)], check=True, capture_output=True, text=True, env=env)
    r = subprocess.run([str(build_dir / target)], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    return r.stdout


def test_installed_layout():
    assert (Path(sk.get_include()) / "slmkernels.h").is_file()
    assert (Path(sk.get_cmake_dir()) / "slmkernelsConfig.cmake").is_file()
    header = (Path(sk.get_include()) / "slmkernels.h").read_text()
    assert f'#define SLMK_VERSION_STRING "{sk.__version__}"' in header


def test_c_program_against_installed_package(tmp_path):
    out = build_and_run(HERE / "capi", tmp_path / "build", "capi_smoke")
    assert out.startswith("capi ok")


def test_readme_c_example(tmp_path):
    text = README.read_text()
    section = text[text.index("## Use from C/C++"):]
    cmake_src = re.search(r"```cmake\n(.*?)```", section, re.S).group(1)
    c_src = re.search(r"```c\n(.*?)```", section, re.S).group(1)
    (tmp_path / "CMakeLists.txt").write_text(cmake_src)
    (tmp_path / "demo.c").write_text(c_src)
    out = build_and_run(tmp_path, tmp_path / "build", "demo")
    # w row 0 = (i % 7) - 3 for i < 32, x = 1: exactly representable in Q8_0 (scale 3/127 * 127)
    want = sum((i % 7) - 3 for i in range(32))
    assert out.strip() == f"slmkernels {sk.__version__} on {sk.get_isa()}: y[0] = {want:.1f}"
