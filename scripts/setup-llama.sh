#!/usr/bin/env bash
# Installs the real local OpenAI-compatible server the local-server tests drive (tests/local):
# llama-cpp-python's server, compiled once from its sdist, CPU only, minimal (no BLAS, no -march=native,
# no llava/mtmd), and the `gguf` package the tests use to write their tiny random-weight model.
# The built wheel is cached in .cache/wheels, so a later run only reinstalls it (seconds).
# Called by scripts/test.sh. Needs cmake, a C/C++ compiler and the Python package index.
set -euo pipefail
cd "$(dirname "$0")/.."

VERSION="${LLAMA_CPP_PYTHON_VERSION:-0.3.36}"
WHEELS=.cache/wheels
BUILD_TIMEOUT="${LLAMA_BUILD_TIMEOUT:-5400}"
mkdir -p "$WHEELS"

installed_ok() {
  python - "$VERSION" <<'PY' 2>/dev/null
import sys, importlib.metadata as m
assert m.version("llama_cpp_python") == sys.argv[1]
import llama_cpp.server.app, gguf  # noqa: F401  (the server and the model writer both import)
PY
}

if installed_ok; then
  echo "== llama-cpp-python $VERSION: installed"
  exit 0
fi

wheel="$(ls "$WHEELS"/llama_cpp_python-"$VERSION"-*.whl 2>/dev/null | head -1 || true)"
if [ -z "$wheel" ]; then
  echo "== llama-cpp-python $VERSION: building the wheel from its sdist (CPU only; takes many minutes)"
  # Why each flag: portable code (the wheel may be reused on another CPU), no BLAS/OpenMP/curl
  # dependencies, and none of llama.cpp's tools, tests or examples (only libllama + ggml are needed).
  export CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_BLAS=OFF -DGGML_OPENMP=OFF -DLLAVA_BUILD=OFF \
-DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_TOOLS=OFF -DLLAMA_BUILD_SERVER=OFF \
-DLLAMA_CURL=OFF -DCMAKE_BUILD_TYPE=Release"
  export CMAKE_BUILD_PARALLEL_LEVEL="${CMAKE_BUILD_PARALLEL_LEVEL:-2}"
  timeout "$BUILD_TIMEOUT" python -m pip wheel --no-deps --no-binary llama-cpp-python \
    --wheel-dir "$WHEELS" "llama-cpp-python==$VERSION"
  wheel="$(ls "$WHEELS"/llama_cpp_python-"$VERSION"-*.whl | head -1)"
fi

echo "== llama-cpp-python $VERSION: installing $wheel"
python -m pip install --quiet --disable-pip-version-check "${wheel}[server]" 'gguf>=0.10'
installed_ok
