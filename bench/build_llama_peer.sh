#!/usr/bin/env bash
# Builds llama.cpp as a benchmark peer, once, outside the project (never in CI's test path):
#   - llama-cpp-python into a venv (for bench/compare_llama.py and `slmkernels bench --llama-python`)
#   - llama.cpp's test-backend-ops from the same sdist (for bench/bench_gemm.py --llama-bin)
# Usage: bash bench/build_llama_peer.sh [PREFIX]   (default PREFIX=../peers; ~10-20 min on 2 cores)
#
# Flags: AVX2/AVX-512/VNNI/BF16 on, AMX off. llama-cpp-python 0.3.36's AMX path dies with SIGILL
# (tilezero before its tile config is loaded) on the AMX machines seen here, so a native build
# cannot run; this build is llama.cpp's fastest path that works on them.
set -euo pipefail
PREFIX=$(realpath -m "${1:-$(dirname "$0")/../../peers}")
VERSION=0.3.36
FLAGS="-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON \
-DGGML_AVX512=ON -DGGML_AVX512_VBMI=ON -DGGML_AVX512_VNNI=ON -DGGML_AVX512_BF16=ON -DGGML_AVX_VNNI=ON \
-DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF"
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
