"""What sending HumanEval prompts as training tokenized them is worth, on one model, in one run.

Two prompt forms, same model, same problems:

- ``raw``: the prompt's own tokens (it ends in a lone ``\\n`` token), the completion the decoded
  new tokens; what the harness did before ``eval/prompting.py``;
- ``healed``: the prompt without its trailing whitespace, the first tokens constrained to
  reproduce it (``prompting.py``), the completion what follows the prompt.

For each form: the mean log-probability (nats) of the canonical solutions as that form makes
the model produce them (raw: the solution's own tokens after the prompt's; healed: the tokens of
prompt + solution after the body's, which also spell the tail, so the healed number pays for one
more ``\\n``), and greedy pass@1 in the sandbox.

    .venv/bin/python benchmarks/quality/prompt_forms.py runs/code-tiny/latest-rank0.pt --limit 164
"""

from __future__ import annotations

import argparse
import statistics

import torch

from llmfoundry_lite.eval.config import GenerationConfig
from llmfoundry_lite.eval.execution import execute_samples
from llmfoundry_lite.eval.generation import cut_at_stop, sample_texts, seeded_generator
from llmfoundry_lite.eval.passk import pass_at_k
from llmfoundry_lite.eval.problems import load_problems
from llmfoundry_lite.eval.prompting import EncodedPrompt, encode_prompt
from llmfoundry_lite.finetune.load import load_model
from llmfoundry_lite.sandbox import Sandbox, SandboxConfig


def enc(tokenizer, text: str) -> list[int]:
    return tokenizer.encode(text, add_special_tokens=False).ids


@torch.inference_mode()
def logprob(model, context: list[int], target: list[int]) -> float:
    """log p(target | context) under ``model``, in nats."""
    ids = torch.tensor([context + target])
    logp = torch.log_softmax(model(ids)[0, :-1].float(), dim=-1)
    picked = logp[len(context) - 1 :].gather(-1, torch.tensor(target)[:, None])
    return float(picked.sum())


def forms(tokenizer, prompt: str, solution: str) -> dict[str, tuple[EncodedPrompt, list[int]]]:
    """form → (what is sent, the tokens that produce the solution after it)."""
    healed = encode_prompt(tokenizer, prompt)
    return {"raw": (EncodedPrompt(enc(tokenizer, prompt), ""), enc(tokenizer, solution)),
            "healed": (healed, enc(tokenizer, prompt + solution)[len(healed.ids) :])}  # fmt: skip


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("model", help="checkpoint, save folder or HF export")
    p.add_argument("--limit", type=int, default=164)
    p.add_argument("--max-new-tokens", type=int, default=128)
    p.add_argument("--workers", type=int, default=2)
    args = p.parse_args()
    torch.manual_seed(0)
    model, tokenizer = load_model(args.model, "cpu")
    problems = load_problems(limit=args.limit)
    gen = GenerationConfig(n_samples=1, batch_size=1, temperature=0.0, max_new_tokens=args.max_new_tokens)
    lp: dict[str, list[float]] = {"raw": [], "healed": []}
    samples: dict[str, list[dict]] = {"raw": [], "healed": []}
    for task_id, problem in problems.items():
        for form, (sent, target) in forms(tokenizer, problem["prompt"], problem["canonical_solution"]).items():
            lp[form].append(logprob(model, sent.ids, target))
            text = sample_texts(model, tokenizer, sent, 1, gen, list(gen.stop), seeded_generator(model, 0))[0]
            samples[form].append({"task_id": task_id, "completion": cut_at_stop(text, gen.stop)})
    with Sandbox(SandboxConfig(), args.workers) as sandbox:
        scores = {f: pass_at_k(execute_samples(problems, s, sandbox, args.workers), [1])["pass@1"] for f, s in samples.items()}
    print(f"model {args.model}, {len(problems)} problems, greedy, max_new_tokens {args.max_new_tokens}")
    print(f"{'form':<8} {'mean log p(canonical)':>22} {'median':>9} {'pass@1':>8}")
    for form in ("raw", "healed"):
        print(f"{form:<8} {statistics.mean(lp[form]):>22.2f} {statistics.median(lp[form]):>9.2f} {scores[form]:>8.4f}")
    gain = [h - r for h, r in zip(lp["healed"], lp["raw"], strict=True)]
    better = sum(g > 0 for g in gain)
    print(f"healed - raw: mean {statistics.mean(gain):+.2f} nats per solution; healed higher on {better}/{len(gain)} problems")


if __name__ == "__main__":
    main()
