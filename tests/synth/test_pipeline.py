"""The whole stage: Stack-format JSONL/Parquet and a real stdlib tree in, four files and honest counts out."""

import json
import shutil
import sysconfig
from pathlib import Path

import pytest

from llmfoundry_lite.cli.synthesize import main, parse_args
from llmfoundry_lite.config import ConfigError, load_config
from llmfoundry_lite.corpus.benchmarks import default_problems_path, read_jsonl
from llmfoundry_lite.synth.checks import drop_reason
from llmfoundry_lite.synth.config import SynthConfig
from llmfoundry_lite.synth.extract import code_of_prompt, extract_functions
from llmfoundry_lite.synth.pipeline import run_synthesis
from llmfoundry_lite.synth.split import heldout_groups
from tests.filtering.stack_rows import stack_row, write_stack

STDLIB = Path(sysconfig.get_paths()["stdlib"])
GOOD = '''\
def scale(values, factor):
    """Multiply every value by ``factor``."""
    out = []
    for v in values:
        out.append(v * factor)
    return out


def clamp(x, lo, hi):
    """Limit ``x`` to ``[lo, hi]``."""
    if x < lo:
        return lo
    return min(x, hi)
'''
NEAR_COPY = GOOD.split("\n\n\n")[0].replace("out.append(v * factor)", "out.append(factor * v)") + "\n"
NO_RETURN = 'def log(msg):\n    """Print it."""\n    print(msg)\n    print("done")\n'


def _humaneval_file(task_id: str = "HumanEval/0") -> str:
    problem = next(p for p in read_jsonl(default_problems_path()) if p["task_id"] == task_id)
    return "VERSION = 3\n\n\n" + problem["prompt"] + problem["canonical_solution"]


# (id, repository, path, content): one document per way a document or function can end
DOCS = [
    ("a", "octo/good", "good.py", GOOD),
    ("b", "octo/copies", "copy.py", GOOD),
    ("c", "octo/copies", "near.py", NEAR_COPY),
    ("d", "octo/bench", "bench.py", _humaneval_file()),
    ("e", "octo/rb", "app.rb", "def f(x)\n  x\nend\n"),
    ("f", "octo/py2", "old.py", 'def f(x):\n    """Doc."""\n    print "x"\n    return x\n'),
    ("g", "octo/log", "log.py", NO_RETURN),
]


def _rows() -> list[dict]:
    return [{"id": i, "repository_name": r, "path": p, "content": c} for i, r, p, c in DOCS]


@pytest.fixture
def jsonl_corpus(tmp_path):
    path = tmp_path / "in" / "docs.jsonl"
    path.parent.mkdir()
    lines = [json.dumps(r) for r in _rows()] + ["{not json", json.dumps({"content": None, "path": "n.py"})]
    path.write_text("\n".join(lines) + "\n")
    return path.parent


def _run(tmp_path, inputs, **kw) -> tuple[dict, dict[str, list[dict]]]:
    cfg = SynthConfig(input=[str(p) for p in inputs], output=str(tmp_path / "out"), **{"report": False, **kw})
    stats = run_synthesis(cfg)
    files = {name: [json.loads(line) for line in (tmp_path / "out" / f"{name}.jsonl").read_text().splitlines()]
             for name in ("instruct", "train", "heldout")}
    assert json.loads((tmp_path / "out" / "stats.json").read_text()) == stats
    return stats, files


def _assert_invariants(stats: dict, files: dict[str, list[dict]]) -> None:
    assert stats["kept"] + sum(stats["dropped_by_reason"].values()) == stats["seen"]
    assert stats["documents"] == stats["documents_parsed"] + sum(stats["documents_skipped_by_reason"].values())
    rows = files["instruct"]
    assert len(rows) == stats["kept"] == stats["train"] + stats["heldout"]
    assert sorted(map(json.dumps, files["train"] + files["heldout"])) == sorted(map(json.dumps, rows))
    for r in rows:
        assert set(r) == {"prompt", "response", "tests", "source_id", "language", "origin"}
        assert r["language"] == "Python" and isinstance(r["tests"], list)
        assert r["origin"] == "untested" or (r["origin"] == "verified" and r["tests"])
        compile(code_of_prompt(r["prompt"]) + r["response"], r["source_id"], "exec")


def test_jsonl_corpus_counts_every_document_and_function(tmp_path, jsonl_corpus):
    stats, files = _run(tmp_path, [jsonl_corpus])
    _assert_invariants(stats, files)
    assert (stats["documents"], stats["documents_parsed"]) == (9, 5)
    assert stats["documents_skipped_by_reason"] == {"bad_json_line": 1, "null_content": 1, "syntax_error": 1,
                                                   "unsupported_language": 1}
    assert stats["seen"] == 2 + 2 + 1 + 1 + 1
    assert {k: v for k, v in stats["dropped_by_reason"].items() if v} == {
        "near_duplicate": 3, "decontaminated": 1, "no_return": 1}
    assert stats["decontaminated_by_benchmark"] == {"HumanEval": 1}
    # the first copy (document a) wins over the exact and the reworded copies of b and c
    assert [r["source_id"] for r in files["instruct"]] == ["a#scale:1", "a#clamp:9"]
    assert files["instruct"][1]["response"] == "    if x < lo:\n        return lo\n    return min(x, hi)\n"


def test_parquet_input_gives_the_same_pairs_as_jsonl(tmp_path, jsonl_corpus):
    parquet = write_stack(tmp_path / "kept" / "part-00000.parquet",
                          [stack_row(p, c, repo=r) for _, r, p, c in DOCS])
    stats, files = _run(tmp_path / "pq", [parquet.parent])
    _, from_jsonl = _run(tmp_path / "js", [jsonl_corpus])
    _assert_invariants(stats, files)
    assert stats["documents"] == len(DOCS)
    assert [(r["prompt"], r["response"]) for r in files["instruct"]] == \
        [(r["prompt"], r["response"]) for r in from_jsonl["instruct"]]


def test_stdlib_tree_with_a_copy_and_a_planted_problem(tmp_path):
    src = tmp_path / "src"
    (src / "vendored").mkdir(parents=True)
    for name in ("textwrap.py", "colorsys.py"):
        shutil.copy(STDLIB / name, src / name)
    text = (STDLIB / "textwrap.py").read_text()
    (src / "vendored" / "textwrap_copy.py").write_text(text + "\n\n" + _humaneval_file("HumanEval/12"))
    (src / "legacy.py").write_text("print 'python 2'\n")
    cfg = SynthConfig(input=["x"])
    passing = [f.program for f in extract_functions(text) if drop_reason(f, cfg) is None]
    stats, files = _run(tmp_path, [src])
    _assert_invariants(stats, files)
    assert stats["documents_skipped_by_reason"] == {"syntax_error": 1}
    assert stats["seen"] == 2 * len(extract_functions(text)) + 1  # colorsys documents none of its functions
    assert stats["dropped_by_reason"]["decontaminated"] == 1
    programs = [code_of_prompt(r["prompt"]) + r["response"] for r in files["instruct"]]
    assert len(programs) >= 5 and set(programs) <= set(passing)  # every pair comes from the first copy
    assert stats["dropped_by_reason"]["near_duplicate"] == len(passing) + (len(passing) - len(programs))
    assert any(r["prompt"].startswith("Write the body of the following method of the Python class `TextWrapper`")
               for r in files["instruct"])
    assert stats["groups"] == {"train": 1, "heldout": 0}  # a source tree is one repository


def _distinct_function(i: int) -> str:
    return (f"def func_{i}(alpha_{i}, beta_{i}):\n    '''Doc {i}.'''\n    gamma_{i} = alpha_{i} * {i} + beta_{i}\n"
            f"    delta_{i} = gamma_{i} - {i}\n    return delta_{i} // {i + 1}\n")


def test_split_keeps_each_repository_on_one_side(tmp_path):
    rows = [{"id": f"d{i}", "repository_name": f"org/r{i % 10}", "path": f"m{i}.py", "content": _distinct_function(i)}
            for i in range(40)]
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "d.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    stats, files = _run(tmp_path, [tmp_path / "in"], heldout_fraction=0.3, seed=7)
    _assert_invariants(stats, files)
    repo_of = {r["id"]: r["repository_name"] for r in rows}
    sides = {name: {repo_of[r["source_id"].split("#")[0]] for r in files[name]} for name in ("train", "heldout")}
    assert not sides["train"] & sides["heldout"] and len(sides["heldout"]) == 3
    assert (stats["train"], stats["heldout"], stats["groups"]) == (28, 12, {"train": 7, "heldout": 3})
    _, again = _run(tmp_path / "again", [tmp_path / "in"], heldout_fraction=0.3, seed=7)
    assert again["heldout"] == files["heldout"]


def test_heldout_groups_is_seeded_and_stays_under_target():
    groups = [f"g{i % 37}" for i in range(1000)] + ["big"] * 300
    chosen = heldout_groups(groups, 0.1, seed=0)
    size = sum(g in chosen for g in groups)
    assert 100 <= size <= 130 and "big" not in chosen
    assert heldout_groups(list(reversed(groups)), 0.1, seed=0) == chosen
    assert heldout_groups(groups, 0.1, seed=1) != chosen
    assert heldout_groups(groups, 0.0, seed=0) == set()


def test_cli_runs_and_takes_trailing_overrides(tmp_path, jsonl_corpus, capsys):
    yaml = tmp_path / "synth.yaml"
    yaml.write_text("min_body_lines: 1\n")
    cfg = parse_args(["--input", str(jsonl_corpus), str(yaml), "heldout_fraction=0.5", "--output", str(tmp_path / "o")])
    assert (cfg.input, cfg.min_body_lines, cfg.heldout_fraction) == ([str(jsonl_corpus)], 1, 0.5)
    main(["--input", str(jsonl_corpus), "--output", str(tmp_path / "o"), "report=false"])
    out = capsys.readouterr().out
    assert "functions 7: kept 2" in out and (tmp_path / "o" / "train.jsonl").is_file()


def test_config_errors_name_the_key(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--input", str(tmp_path), "heldout_fractoin=0.2"])
    assert exc.value.code == 2 and "heldout_fractoin" in capsys.readouterr().err
    with pytest.raises(ConfigError, match="split_by.*repository"):
        load_config(SynthConfig, overrides=["split_by=repo"], flags={"input": ["x"]})
    with pytest.raises(ConfigError, match="min_body_lines"):
        load_config(SynthConfig, overrides=["min_body_lines=9", "max_body_lines=3"], flags={"input": ["x"]})
    with pytest.raises(ConfigError, match="ngram must be positive"):
        load_config(SynthConfig, overrides=["decontam.ngram=0"], flags={"input": ["x"]})
    with pytest.raises(ConfigError, match="input"):
        load_config(SynthConfig)
