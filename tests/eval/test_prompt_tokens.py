"""Prompts reach the model as training tokenized such text (issue 30, item 1).

The committed test tokenizer uses the code recipe, whose pre-tokenizer joins a line break with
the indentation after it. For every HumanEval problem, and every prompt of every translated
language, the tokens sent must be a prefix of the tokens of prompt + solution, and the healing
constraint must admit the solution's own next tokens until the prompt's tail is reproduced.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from llmfoundry_lite.eval.config import GenerationConfig
from llmfoundry_lite.eval.generation import predict_infill, sample_humaneval
from llmfoundry_lite.eval.infill import build_infill_tasks, psm_prompt
from llmfoundry_lite.eval.languages import LANGUAGES, translate_all
from llmfoundry_lite.eval.prompting import encode_prompt, healer_for

REFERENCES = Path(__file__).parent / "references"


def enc(tok, text: str) -> list[int]:
    return tok.encode(text, add_special_tokens=False).ids


def assert_as_trained(tok, prompt: str, solution: str) -> None:
    """The ids sent prefix the ids of prompt + solution, and the solution's next ids fit the healing."""
    sent = encode_prompt(tok, prompt)
    whole = enc(tok, prompt + solution)
    assert whole[: len(sent.ids)] == sent.ids, f"prompt tokens are not a prefix: {prompt[-30:]!r}"
    allowed, rest = healer_for(tok).constraint(sent.tail), whole[len(sent.ids) :]
    for i in range(len(rest)):
        mask = allowed(rest[:i]) if allowed else None
        if mask is None:
            break
        assert mask[rest[i]], f"healing refuses the solution's token {tok.decode([rest[i]])!r} after {prompt[-30:]!r}"
    assert tok.decode(rest).startswith(sent.tail)


def test_all_164_prompts_are_a_token_prefix_of_prompt_plus_canonical(tiny_model_and_tokenizer, problems):
    _, tok = tiny_model_and_tokenizer
    assert len(problems) == 164
    for problem in problems.values():
        assert_as_trained(tok, problem["prompt"], problem["canonical_solution"])
    # what the old way sent: the prompt's own tokens, which end in a lone "\n" the solution never has
    broken = [t for t, p in problems.items()
              if enc(tok, p["prompt"] + p["canonical_solution"])[: len(enc(tok, p["prompt"]))] != enc(tok, p["prompt"])]
    assert len(broken) == 164


@pytest.mark.parametrize("language", sorted(LANGUAGES))
def test_every_translated_prompt_is_a_token_prefix(tiny_model_and_tokenizer, problems, language):
    _, tok = tiny_model_and_tokenizer
    lang = LANGUAGES[language]
    translated = translate_all(problems, language).translated
    references = {f"HumanEval/{p.stem.split('_')[1]}": p.read_text() for p in (REFERENCES / language).iterdir()}
    body = next(iter(references.values()))  # a real body of this language after every other prompt
    for task_id, t in translated.items():
        assert_as_trained(tok, t.prompt, references.get(task_id, body))
    assert references.keys() <= translated.keys() and lang.name == language


def test_infilling_prefixes_are_healed(tiny_model_and_tokenizer, problems):
    _, tok = tiny_model_and_tokenizer
    tasks = build_infill_tasks(problems)
    for task in tasks[::7]:
        sent = psm_prompt(tok, task)
        assert "\n" in sent.tail and not sent.tail.strip()
        assert_as_trained(tok, task.prefix, task.middle + task.suffix)


def recording_generate(monkeypatch) -> list[list[int]]:
    """Record the prompt ids every ``generate`` call receives."""
    import llmfoundry_lite.eval.generation as generation

    seen: list[list[int]] = []
    real = generation.generate

    def spy(model, input_ids, *args, **kwargs):
        seen.append(input_ids[0].tolist())
        return real(model, input_ids, *args, **kwargs)

    monkeypatch.setattr(generation, "generate", spy)
    return seen


def test_model_mode_and_the_callback_send_the_stripped_prompt(tiny_model_and_tokenizer, problems, monkeypatch):
    from llmfoundry_lite.eval.callback import HumanEvalCallback
    from tests.eval.conftest import TOKENIZER_DIR

    model, tok = tiny_model_and_tokenizer
    seen = recording_generate(monkeypatch)
    three = dict(list(problems.items())[:3])
    gen = GenerationConfig(n_samples=2, batch_size=2, max_new_tokens=8, temperature=1.0, seed=3)
    sample_humaneval(model, tok, three, gen)
    assert seen == [enc(tok, p["prompt"].rstrip()) for p in three.values()]
    assert all(enc(tok, p["prompt"])[-1] != s[-1] for p, s in zip(three.values(), seen, strict=True))
    seen.clear()
    cb = HumanEvalCallback(tokenizer=str(TOKENIZER_DIR), n_problems=1, max_new_tokens=4, workers=1)
    cb.sample_and_run(model, tok, cb.problems_of("python"))
    assert seen == [enc(tok, problems["HumanEval/0"]["prompt"].rstrip())]


def test_healing_makes_even_a_random_model_restore_the_tail(tiny_model_and_tokenizer, problems):
    """The untrained model would almost never emit "\\n" + indentation first; constrained, every row does."""
    from llmfoundry_lite.eval.generation import eos_id_of
    from llmfoundry_lite.models.generate import generate

    model, tok = tiny_model_and_tokenizer
    sent = encode_prompt(tok, problems["HumanEval/0"]["prompt"])
    rows = torch.tensor([sent.ids] * 8)
    free = generate(model, rows, 3, temperature=1.0, eos_id=eos_id_of(tok), generator=torch.Generator().manual_seed(0))
    healed = generate(model, rows, 3, temperature=1.0, eos_id=eos_id_of(tok), generator=torch.Generator().manual_seed(0),
                      allowed=healer_for(tok).constraint(sent.tail))
    assert sum(tok.decode(r).startswith("\n") for r in free) < 8
    assert all(tok.decode(r).startswith(sent.tail) for r in healed)


def test_infilling_sends_the_stripped_prefix(tiny_model_and_tokenizer, problems, monkeypatch):
    model, tok = tiny_model_and_tokenizer
    seen = recording_generate(monkeypatch)
    task = build_infill_tasks({"HumanEval/2": problems["HumanEval/2"]})[0]
    middle = predict_infill(model, tok, [psm_prompt(tok, task)], GenerationConfig(max_new_tokens=6))
    assert seen[0][1 : 1 + len(enc(tok, task.prefix.rstrip()))] == enc(tok, task.prefix.rstrip())
    assert len(middle) == 1 and "\n" not in middle[0].rstrip("\n")
