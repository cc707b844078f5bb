#!/usr/bin/env bash
# One-GPU check, ≤ 10 minutes, one table (scripts/gpu_check.py says what each row measures): speed and
# kernel rows, then a few steps of each real user command (train, LoRA, export, serve) as subprocesses.
# `--smoke` runs it all on CPU at toy sizes; `--only commands` runs the command rows alone.
# Never part of CI. Where our .venv exists (a GPU box with `make install` done) it is used;
# on a bare GPU machine whose python3 has torch but nothing else, run scripts/gpu_wheels.sh on a
# machine with PyPI first: it fills .whl/ours and .whl/llmf, which are installed here into
# /tmp/site-ours (our dependencies) and /tmp/site-llmf (llm-foundry, kept apart as make bench does).
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONUNBUFFERED=1
PY=python3
if [ -x .venv/bin/python ]; then
  PY=.venv/bin/python
elif [ -d .whl/ours ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site-ours .whl/ours/*.whl
  export PYTHONPATH="/tmp/site-ours:$PWD${PYTHONPATH:+:$PYTHONPATH}"
  export PATH="/tmp/site-ours/bin:$PATH"
fi
if [ -d .whl/llmf ] && [ -z "${LLMF_SITE:-}" ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site-llmf .whl/llmf/*.whl
  export LLMF_SITE="/tmp/site-llmf:/tmp/site-ours"
elif [ -x .bench-venv/bin/python ] && [ -z "${LLMF_SITE:-}" ]; then
  LLMF_SITE="$(.bench-venv/bin/python -c 'import site; print(site.getsitepackages()[0])')"
  export LLMF_SITE
fi
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null || true
exec "$PY" scripts/gpu_check.py "$@"
