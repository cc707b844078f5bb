"""``engine=spark`` on the test cluster (tests/spark_cluster.py) writes exactly what the local engine writes, and its near-dedup is the local rule."""

import json
import random

from llmfoundry_lite.synth.config import SelfAlignConfig, SynthConfig
from llmfoundry_lite.synth.corpus_checks import near_duplicates
from llmfoundry_lite.synth.pipeline import run_synthesis
from llmfoundry_lite.synth.spark_synthesis import near_duplicate_pairs
from tests.synth.test_pipeline import GOOD, NEAR_COPY, _humaneval_file
from tests.synth.test_self_align import _fake_sampler, corpus, hf_model  # noqa: F401 (fixtures)
from tests.synth.test_verify import FAST

WORDS = "alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu nu xi omicron pi rho sigma tau".split()


def _text(rng: random.Random, n: int = 40) -> str:
    return " ".join(rng.choice(WORDS) + str(rng.randrange(6)) for _ in range(n))


def _mutate(rng: random.Random, text: str, share: float) -> str:
    tokens = text.split()
    for i in rng.sample(range(len(tokens)), int(share * len(tokens))):
        tokens[i] = rng.choice(WORDS) + str(rng.randrange(6))
    return " ".join(tokens)


def test_near_duplicates_on_spark_equal_the_local_greedy_rule(spark, tmp_path):
    rng = random.Random(3)
    texts = []
    for _ in range(12):  # families: a base, chains of edits away from it, exact copies, strangers
        base = _text(rng)
        texts.append(base)
        step = base
        for _ in range(rng.randrange(1, 5)):
            step = _mutate(rng, step, 0.15)  # A~B~C: C may be far from A
            texts.append(step)
        texts += [base] * rng.randrange(0, 3)
        texts.append(_text(rng))
    texts.append("")  # no tokens: no signature, never a duplicate
    rng.shuffle(texts)
    local = near_duplicates(texts, 0.5)
    assert 10 <= sum(d is not None for d in local) < len(texts) // 2  # the rule has real work here

    class _Pair:  # what near_duplicate_pairs reads of a pair
        def __init__(self, program: str) -> None:
            self.program = program

    rdd = spark.sparkContext.parallelize([(i, _Pair(t)) for i, t in enumerate(texts)], 3)
    on_spark = {r["ordinal"]: r["duplicate_of"] for r in near_duplicate_pairs(spark, rdd, 0.5, tmp_path).collect()}
    assert on_spark == {i: d for i, d in enumerate(local) if d is not None}


def _corpus(tmp_path):
    rows = []
    for i in range(24):  # 8 repositories, some functions verified by doctests, one failing, copies across repos
        doc = (f'def add_{i}(a, b):\n    """Add with an offset.\n\n    >>> add_{i}(1, 2)\n    {3 + i}\n    """\n'
               f"    total = a + b\n    return total + {i}\n")
        if i == 5:
            doc = doc.replace(f"{3 + i}\n", f"{4 + i}\n")  # a wrong doctest: failed_tests
        rows.append({"id": f"d{i}", "repository_name": f"org/r{i % 8}", "path": f"m{i}.py",
                     "content": doc + "\n\n" + (GOOD if i % 3 == 0 else NEAR_COPY if i % 3 == 1 else "")})
    rows.append({"id": "bench", "repository_name": "org/bench", "path": "b.py", "content": _humaneval_file()})
    for part, chunk in enumerate((rows[:10], rows[10:])):  # two input files: two units
        (tmp_path / "in").mkdir(exist_ok=True)
        (tmp_path / "in" / f"part{part}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in chunk))
    return tmp_path / "in"


def _comparable(stats: dict) -> dict:
    stats = json.loads(json.dumps(stats))
    for key in ("seconds", "config"):
        stats.pop(key)
    stats["verify"].pop("program_wall_s")
    return stats


def test_spark_engine_writes_what_the_local_engine_writes(spark, tmp_path, monkeypatch, keep_untested=False):
    """Also with the paths given relative to the driver's directory: executors run in their workers' own."""
    inputs = _corpus(tmp_path)
    runs = {}
    monkeypatch.chdir(tmp_path)
    for engine, where in (("local", [str(inputs), str(tmp_path / "local")]), ("spark", ["in", "spark"])):
        cfg = SynthConfig(input=[where[0]], output=where[1], engine=engine, workers=2,
                          heldout_fraction=0.3, keep_untested=keep_untested, sandbox=FAST)
        runs[engine] = run_synthesis(cfg)
    local, on_spark = runs["local"], runs["spark"]
    assert _comparable(on_spark) == _comparable(local)
    dropped = local["dropped_by_reason"]
    assert dropped["near_duplicate"] >= 10 and dropped["decontaminated"] == 1 and dropped["failed_tests"] == 1
    assert local["verify"]["verified"] > 0 and local["heldout"] > 0 and local["train"] > 0
    for name in ("instruct", "train", "heldout"):
        assert (tmp_path / "spark" / f"{name}.jsonl").read_bytes() == (tmp_path / "local" / f"{name}.jsonl").read_bytes()
    assert sorted(p.name for p in (tmp_path / "spark" / "report").iterdir()) == sorted(
        p.name for p in (tmp_path / "local" / "report").iterdir())
    assert not (tmp_path / "spark" / "work" / "spark").exists()  # scratch removed; extraction results kept
    assert on_spark["extract"] == {"units": 2, "reused": 0}
    again = run_synthesis(SynthConfig(input=[str(inputs)], output=str(tmp_path / "spark"), engine="spark", workers=2,
                                      heldout_fraction=0.3, keep_untested=keep_untested, sandbox=FAST, report=False))
    assert again["extract"] == {"units": 2, "reused": 2} and again["kept"] == on_spark["kept"]
    assert again["verify"]["reused"] == again["verify"]["executed"] == on_spark["verify"]["executed"] > 0


def test_self_align_on_spark_matches_the_local_engine(spark, corpus, hf_model, tmp_path):  # noqa: F811
    runs = {}
    for engine in ("local", "spark"):
        cfg = SynthConfig(input=[str(corpus)], output=str(tmp_path / engine), engine=engine, workers=2,
                          heldout_fraction=0.3, report=False, sandbox=FAST, model=str(hf_model),
                          self_align=SelfAlignConfig(targets="all", k=3, max_new_tokens=24))
        runs[engine] = run_synthesis(cfg)
    local, on_spark = runs["local"], runs["spark"]
    assert on_spark["self_align"].pop("seconds").keys() == local["self_align"].pop("seconds").keys()
    assert _comparable(on_spark) == _comparable(local) and local["self_align"]["samples"] == 9
    for name in ("instruct", "train", "heldout"):
        assert (tmp_path / "spark" / f"{name}.jsonl").read_bytes() == (tmp_path / "local" / f"{name}.jsonl").read_bytes()


def test_a_partition_puts_self_aligned_rows_right_after_their_pair(corpus, tmp_path, monkeypatch):  # noqa: F811
    from llmfoundry_lite.synth import spark_synthesis
    from llmfoundry_lite.synth.collect import collect_pairs

    model = tmp_path / "model.pt"
    model.write_bytes(b"")  # the config checks that the path exists; the injected sampler never reads it
    cfg = SynthConfig(input=[str(corpus)], output=str(tmp_path / "out"), sandbox=FAST, model=str(model),
                      self_align=SelfAlignConfig(targets="untested", k=3))
    monkeypatch.setattr(spark_synthesis, "_sampler", lambda cfg: (_fake_sampler, None))
    pairs, _ = collect_pairs(cfg)
    items = list(reversed([(10 * i, p) for i, p in enumerate(pairs)]))  # a shuffle hands a partition any order
    out = list(spark_synthesis._verify(items, cfg))
    rows = [(key, pair.origin, pair.source_id.split("#")[1].split(":")[0]) for _, key, pair in out[:-1]]
    assert rows == [((0, 0), "verified", "running_total"), ((10, 1), "self-aligned", "double_all"),
                    ((30, 0), "untested", "clamp_all")]
    tally, section = out[-1][1], out[-1][2]
    assert (tally.kept, tally.dropped["failed_tests"], section["rows_added"]) == (2, 2, 1)
    merged = spark_synthesis.merge_self_align(section, section)
    assert (merged["rows_added"], merged["k"], merged["samples_skipped_by_reason"]) == (
        2, 3, {k: 2 * v for k, v in section["samples_skipped_by_reason"].items()})
