#!/usr/bin/env bash
# Builds llama.cpp as a benchmark peer, once, outside the project (never in CI's test path):
#   - llama-cpp-python into a venv (for bench/compare_llama.py and `slmkernels bench --llama-python`)
#   - llama.cpp's test-backend-ops from the same sdist (for bench/compare_backend_ops.py --backend-ops)
# Usage: bash bench/build_llama_peer.sh [PREFIX]   (default PREFIX=../peers; ~10-20 min on 2 cores)
#
# Flags: each of llama.cpp's x86 ISA options follows this CPU's /proc/cpuinfo flags (a
# portable build, GGML_NATIVE=OFF, of exactly the paths this CPU can run). Forcing them was
# wrong both ways: GGML_AVX_VNNI=ON built a peer that died with SIGILL on an AVX-512 VNNI CPU
# without AVX-VNNI (AMD Zen 4), and AMX off left a Sapphire Rapids peer slower than it is.
# LLAMA_PEER_AMX=OFF builds without AMX on a CPU that has it (llama-cpp-python 0.3.36's AMX
# path was seen to die with SIGILL, tilezero before its tile configuration, on some AMX hosts).
# Other architectures: GGML_NATIVE=ON. Extra CMake options: LLAMA_PEER_CMAKE_ARGS.
set -euo pipefail
PREFIX=$(realpath -m "${1:-$(dirname "$0")/../../peers}")
VERSION=0.3.36
cpu_flags=" $(grep -m1 '^flags' /proc/cpuinfo 2>/dev/null | cut -d: -f2) "
cpu_has() { case "$cpu_flags" in *" $1 "*) return 0 ;; *) return 1 ;; esac; }
onoff() { if cpu_has "$1"; then echo ON; else echo OFF; fi; }
if [ "$(uname -m)" = x86_64 ] && [ -r /proc/cpuinfo ]; then
  amx=$(onoff amx_int8)
  [ "${LLAMA_PEER_AMX:-}" = OFF ] && amx=OFF
  FLAGS="-DGGML_NATIVE=OFF -DGGML_AVX=$(onoff avx) -DGGML_AVX2=$(onoff avx2) -DGGML_FMA=$(onoff fma) \
-DGGML_F16C=$(onoff f16c) -DGGML_BMI2=$(onoff bmi2) -DGGML_AVX512=$(onoff avx512f) \
-DGGML_AVX512_VBMI=$(onoff avx512vbmi) -DGGML_AVX512_VNNI=$(onoff avx512_vnni) \
-DGGML_AVX512_BF16=$(onoff avx512_bf16) -DGGML_AVX_VNNI=$(onoff avx_vnni) \
-DGGML_AMX_TILE=$amx -DGGML_AMX_INT8=$amx -DGGML_AMX_BF16=$([ "$amx" = ON ] && onoff amx_bf16 || echo OFF)"
else
  FLAGS="-DGGML_NATIVE=ON"
fi
FLAGS="$FLAGS ${LLAMA_PEER_CMAKE_ARGS:-}"
echo "llama.cpp peer flags: $FLAGS"
mkdir -p "$PREFIX/src"
python3 -m venv "$PREFIX/venv"
"$PREFIX/venv/bin/pip" download --no-deps --no-binary :all: -d "$PREFIX/src" "llama-cpp-python==$VERSION"
CMAKE_ARGS="$FLAGS" "$PREFIX/venv/bin/pip" install numpy "$PREFIX/src/llama_cpp_python-$VERSION.tar.gz"
tar xzf "$PREFIX/src/llama_cpp_python-$VERSION.tar.gz" -C "$PREFIX/src"
# shellcheck disable=SC2086
cmake -S "$PREFIX/src/llama_cpp_python-$VERSION/vendor/llama.cpp" -B "$PREFIX/llama-build" -G Ninja \
  -DCMAKE_BUILD_TYPE=Release -DLLAMA_CURL=OFF -DLLAMA_BUILD_TESTS=ON -DLLAMA_BUILD_EXAMPLES=OFF \
  -DLLAMA_BUILD_SERVER=OFF $FLAGS
cmake --build "$PREFIX/llama-build" --target test-backend-ops
echo "peer python:      $PREFIX/venv/bin/python"
echo "test-backend-ops: $PREFIX/llama-build/bin/test-backend-ops"
