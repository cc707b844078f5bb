"""Self-align mode (``model=PATH``): sampled bodies judged by the mined tests, counted, added as rows."""

import json
from pathlib import Path

import pytest
import torch

from llmfoundry_lite.config import ConfigError, load_config
from llmfoundry_lite.models.config import ModelConfig
from llmfoundry_lite.models.hf_export import export_hf
from llmfoundry_lite.models.transformer import Transformer
from llmfoundry_lite.synth import self_align
from llmfoundry_lite.synth.config import SelfAlignConfig, SynthConfig
from llmfoundry_lite.synth.pipeline import run_synthesis
from llmfoundry_lite.synth.self_align import cut_body, pair_seed
from llmfoundry_lite.tokenizer import load_tokenizer
from tests.conftest import FAST

TOKENIZER_DIR = Path(__file__).parents[1] / "assets" / "tokenizer"
# One repository per outcome-to-be, so the split can be checked per group.
MODULES = {
    "octo/ok": '''\
def running_total(values):
    """Prefix sums.

    >>> running_total([1, 2, 3])
    [1, 3, 6]
    """
    out, acc = [], 0
    for v in values:
        acc += v
        out.append(acc)
    return out
''',
    "octo/buggy": '''\
def double_all(items):
    """Twice every item (the body is wrong: the model may fix it).

    >>> double_all([1, 2])
    [2, 4]
    """
    result = [item * 3 for item in items]
    return result
''',
    "octo/hopeless": '''\
def squares(limit):
    """Squares below ``limit`` (the body is wrong, and so is every sample).

    >>> squares(3)
    [0, 1, 4]
    """
    values = [i + i for i in range(limit)]
    return values
''',
    "octo/none": '''\
def clamp_all(items, low):
    """Raise every item to at least ``low`` (no tests)."""
    result = [max(item, low) for item in items]
    return tuple(result)
''',
}
FIXED = {"double_all": "    result = [item * 2 for item in items]\n    return result\n",
         "running_total": "    acc, out = 0, []\n    for v in values:\n        acc += v\n        out.append(acc)\n"
                          "    return out\n",
         "squares": "    values = [i for i in range(limit)]\n    return values\n"}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    path = tmp_path_factory.mktemp("in") / "docs.jsonl"
    rows = [{"id": repo.split("/")[1], "repository_name": repo, "path": "m.py", "content": text}
            for repo, text in MODULES.items()]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path.parent


@pytest.fixture(scope="module")
def hf_model(tmp_path_factory) -> Path:
    """A tiny random model over the test tokenizer, exported as an HF directory."""
    torch.set_num_threads(1)
    tokenizer = load_tokenizer(TOKENIZER_DIR)
    torch.manual_seed(0)
    cfg = ModelConfig(d_model=32, n_layers=2, n_heads=4, vocab_size=tokenizer.get_vocab_size(), max_seq_len=256)
    return export_hf(Transformer(cfg).eval(), tokenizer, tmp_path_factory.mktemp("model") / "tiny")


def _run(corpus, out: Path, **kw) -> tuple[dict, list[dict]]:
    cfg = SynthConfig(input=[str(corpus)], output=str(out), heldout_fraction=0.3, report=False, sandbox=FAST, **kw)
    stats = run_synthesis(cfg)
    rows = [json.loads(line) for line in (out / "instruct.jsonl").read_text().splitlines()]
    return stats, rows


def _name(row: dict) -> str:
    return row["source_id"].split("#")[1].split(":")[0]


def test_random_model_end_to_end_counts_honestly(corpus, hf_model, tmp_path):
    plain, plain_rows = _run(corpus, tmp_path / "plain", workers=2)
    stats, rows = _run(corpus, tmp_path / "sa", workers=2, model=str(hf_model),
                       self_align=SelfAlignConfig(targets="all", k=3, max_new_tokens=24))
    s = stats["self_align"]
    assert (stats["kept"], stats["dropped_by_reason"], stats["seen"]) == \
        (plain["kept"], plain["dropped_by_reason"], plain["seen"])
    assert stats["kept"] + sum(stats["dropped_by_reason"].values()) == stats["seen"] == 4
    assert (s["instructions_targeted"], s["without_tests"], s["sampled"], s["samples"]) == (4, {"no_tests": 1}, 3, 9)
    assert s["samples_run"] + sum(s["samples_skipped_by_reason"].values()) == s["samples"]
    assert s["samples_run"] == s["samples_passed"] + s["samples_failed"] + s["samples_timed_out"]
    assert s["rows_added"] == stats["origins"].get("self-aligned", 0) <= s["samples_passed"]
    assert s["rows_added"] == 0  # random weights: nothing passes a doctest
    assert len(rows) == stats["train"] + stats["heldout"] == stats["kept"] + s["rows_added"]
    assert "self_align" not in plain and stats["config"]["model"] == str(hf_model)
    for name in ("instruct", "train", "heldout"):
        assert (tmp_path / "sa" / f"{name}.jsonl").read_bytes() == (tmp_path / "plain" / f"{name}.jsonl").read_bytes()
    assert [_name(r) for r in plain_rows] == ["running_total", "clamp_all"]


def _fake_sampler(code: str, seed: int) -> list[str]:
    """k=3 samples: garbage, a wrong body, then the fixed body (or the wrong one again for ``squares``)."""
    name = code.split("def ")[1].split("(")[0]
    return ["    return (\n", "    return None\n", FIXED[name] + "\ndef trailing():\n    pass\n"]


@pytest.fixture(scope="module")
def injected(corpus, tmp_path_factory):
    """Runs with the sampler injected (``load_sampler`` replaced): both targets, workers 1 and 2."""
    out = {}
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(self_align, "load_sampler", lambda cfg: (_fake_sampler, None))
        model = tmp_path_factory.mktemp("fake") / "model.pt"
        model.write_bytes(b"")  # the config checks that the path exists; the injected sampler never reads it
        for targets in ("untested", "all"):
            for workers in (1, 2):
                d = tmp_path_factory.mktemp(f"{targets}{workers}")
                out[targets, workers] = (*_run(corpus, d, workers=workers, model=str(model),
                                               self_align=SelfAlignConfig(targets=targets, k=3)), d)
    return out


def test_passing_samples_become_self_aligned_rows(injected):
    stats, rows, _ = injected["untested", 1]
    s = stats["self_align"]
    # targets: double_all and squares failed their tests, clamp_all has none; running_total was verified
    assert (s["instructions_targeted"], s["without_tests"], s["sampled"], s["samples"]) == (3, {"no_tests": 1}, 2, 6)
    assert s["samples_skipped_by_reason"] == {"does_not_compile": 2, "trivial_body": 2}
    assert (s["samples_run"], s["samples_passed"], s["samples_failed"], s["rows_added"]) == (2, 1, 1, 1)
    assert stats["origins"] == {"self-aligned": 1, "untested": 1, "verified": 1}
    assert stats["kept"] == 2 and stats["dropped_by_reason"]["failed_tests"] == 2
    added = [r for r in rows if r["origin"] == "self-aligned"]
    assert len(added) == 1 and added[0]["response"] == FIXED["double_all"]
    assert added[0]["source_id"] == "buggy#double_all:1#sample2"
    assert added[0]["tests"] and "DocTestRunner" in added[0]["tests"][0]
    assert added[0]["prompt"].startswith("Write the body of the following Python function.")
    assert [_name(r) for r in rows] == ["running_total", "double_all", "clamp_all"]  # input order


def test_targets_all_samples_verified_pairs_too(injected):
    stats, rows, _ = injected["all", 1]
    s = stats["self_align"]
    assert (s["instructions_targeted"], s["sampled"], s["rows_added"]) == (4, 3, 2)
    assert (s["samples_run"], s["samples_passed"], s["samples_skipped_by_reason"]) == \
        (3, 2, {"does_not_compile": 3, "trivial_body": 3})
    by_name = {_name(r): r for r in rows if r["origin"] == "self-aligned"}
    assert set(by_name) == {"double_all", "running_total"}
    assert by_name["running_total"]["response"] == FIXED["running_total"]
    assert stats["kept"] + sum(stats["dropped_by_reason"].values()) == stats["seen"]


def test_self_aligned_rows_follow_their_group_and_do_not_depend_on_workers(injected):
    for targets in ("untested", "all"):
        stats, rows, d = injected[targets, 1]
        _, _, d2 = injected[targets, 2]
        for name in ("instruct", "train", "heldout"):
            assert (d / f"{name}.jsonl").read_bytes() == (d2 / f"{name}.jsonl").read_bytes()
        sides = {}
        for side in ("train", "heldout"):
            for line in (d / f"{side}.jsonl").read_text().splitlines():
                sides.setdefault(json.loads(line)["source_id"].split("#")[0], set()).add(side)
        assert all(len(v) == 1 for v in sides.values())
        assert stats["train"] + stats["heldout"] == len(rows)


def test_cut_body_and_seeds():
    assert cut_body("    return x\n\n\ndef g():\n    pass\n") == "    return x\n"
    assert cut_body("    if a:\n        return 1\n    return 2\n# comment\n") == "    if a:\n        return 1\n    return 2\n"
    assert cut_body("def g():\n") == "" and cut_body("    y = 1") == "    y = 1\n"
    assert pair_seed(0, "a#f:1") == pair_seed(0, "a#f:1") != pair_seed(1, "a#f:1") != pair_seed(0, "a#g:1")


def test_config_errors_name_the_key(tmp_path):
    flags = {"input": ["x"]}
    with pytest.raises(ConfigError, match="self_align.targets"):
        load_config(SynthConfig, overrides=["self_align.targets=some"], flags=flags)
    with pytest.raises(ConfigError, match="self_align.k"):
        load_config(SynthConfig, overrides=["self_align.k=0"], flags=flags)
    with pytest.raises(ConfigError, match="top_p"):
        load_config(SynthConfig, overrides=["self_align.top_p=0"], flags=flags)
    with pytest.raises(ConfigError, match="self_align"):
        load_config(SynthConfig, overrides=["self_align.kk=2"], flags=flags)
    with pytest.raises(ConfigError, match="model"):
        load_config(SynthConfig, overrides=[f"model={tmp_path / 'missing'}"], flags=flags)
