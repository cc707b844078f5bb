"""HumanEval in JS, C++, Java and Bash: coverage, hand-written references pass, wrong ones fail.

References (``references/<lang>/HumanEval_N.<ext>``) hold only a completion in MultiPL-E's
layout: the text a model generates before the stop token (C++, Java, Bash: the body without the
closing brace, which the tests begin with; JavaScript: the body and its brace). Each language also gets wrong variants (an off-by-one or a flipped
comparison made by editing a reference), a syntax error (``failed: compile error``) and a
stub body that must fail on every problem it is run on, so that no translated test suite is
vacuous: on every translated problem of every language. js and sh run one sandboxed program
per sample, as the CLI does. For cpp and java one compile costs ~0.7 s / ~1.5 s idle (twice
that on a busy 2-core machine), so stubs and references are compiled together in one program
per language (``compiled_batch.py``), and the first ``PER_PROGRAM`` references, the wrong
variants and the syntax error go through the CLI's one-program-per-sample path.
"""

from __future__ import annotations

import dataclasses
import re
import shutil
from pathlib import Path

import pytest

from llmfoundry_lite.eval.config import LANGUAGE_NAMES
from llmfoundry_lite.eval.execution import execute_translated
from llmfoundry_lite.eval.languages import LANGUAGES, translate_all
from llmfoundry_lite.eval.languages.java import PAIR, PAIR_FLAGS
from llmfoundry_lite.eval.languages.pymodel import Ty
from llmfoundry_lite.eval.languages.pyparse import parse_problem
from llmfoundry_lite.sandbox import Sandbox, SandboxConfig
from tests.eval.compiled_batch import java_job, run_batch

REFERENCES = Path(__file__).parent / "references"
COMPILED = ("cpp", "java")
PER_PROGRAM = 3

# (problem, text in the reference, replacement): each makes the completion wrong
WRONG = {
    "js": [("HumanEval/15", "i <= n", "i < n"), ("HumanEval/60", "n + 1", "n - 1"), ("HumanEval/3", "balance < 0", "balance <= 0"),
           ("HumanEval/55", "i < n", "i <= n")],
    "cpp": [("HumanEval/15", "i <= n", "i < n"), ("HumanEval/60", "n + 1", "n - 1"), ("HumanEval/3", "balance < 0", "balance <= 0")],
    "java": [("HumanEval/15", "i <= n", "i < n"), ("HumanEval/60", "n + 1", "n - 1"), ("HumanEval/3", "balance < 0", "balance <= 0")],
    "sh": [("HumanEval/15", "i <= n", "i < n"), ("HumanEval/60", "n + 1", "n - 1"), ("HumanEval/3", "balance < 0", "balance <= 0")],
}
SYNTAX_ERROR = {"js": "  return (;\n}\n", "cpp": "    return (;", "java": "        return (;", "sh": "    if then"}
CLOSED = {"cpp": "    return x + y;\n}\n", "java": "        return x + y;\n    }\n", "sh": "    echo $(($1 + $2))\n}\n"}
"""HumanEval/53 completions in the old layout (closing the function themselves): MultiPL-E's tests
close it again, so the program does not compile, as MultiPL-E would score them."""
JAVA_ZERO = {"int": "0L", "float": "0.0f", "bool": "false"}


def stub(language: str, return_type: Ty) -> str:
    """A body that compiles for the return type and returns a fixed default."""
    if language == "js":
        return "  return 0;\n}\n"
    if language == "cpp":
        return "    return {};"
    if language == "java":
        return f"        return {JAVA_ZERO.get(return_type.kind, 'null')};"
    return "    echo 0"


@pytest.fixture(scope="module")
def coverage(problems):
    return {name: translate_all(problems, name) for name in LANGUAGES}


@pytest.fixture(scope="module")
def sandboxes():
    opened: dict[str, Sandbox] = {}

    def get(language: str) -> Sandbox:
        lang = LANGUAGES[language]
        if shutil.which("bwrap") is None:
            pytest.skip("bubblewrap (bwrap) is not installed")
        if lang.missing_tools():
            pytest.skip(f"{language} needs {', '.join(lang.missing_tools())}, not installed here")
        if language not in opened:
            opened[language] = Sandbox(SandboxConfig(timeout=3.0), workers=2, binds=lang.binds())
        return opened[language]

    yield get
    for sandbox in opened.values():
        sandbox.close()


def batch(sandbox: Sandbox, language: str, programs: dict) -> dict[str, str]:
    """``compiled_batch.run_batch``, with javatuples' ``Pair`` (``languages.java.PAIR``) compiled into Java's batch."""
    if language != "java":
        return run_batch(sandbox, language, programs)
    job = java_job(programs, sandbox.cfg)
    javac = dataclasses.replace(job.steps[0], argv=(*job.steps[0].argv, *PAIR_FLAGS, "Pair.java"))
    result = sandbox.run_job(dataclasses.replace(job, files={**job.files, "Pair.java": PAIR.encode()},
                                                 steps=(javac, *job.steps[1:])))  # fmt: skip
    assert result.result == "passed", result.output[-3000:]
    return dict(re.findall(r"^(HumanEval/\d+) (passed|failed)$", result.output, re.MULTILINE))


def references(language: str) -> dict[str, str]:
    ext = LANGUAGES[language].extension
    return {f"HumanEval/{p.stem.split('_')[1]}": p.read_text() for p in sorted((REFERENCES / language).glob(f"*.{ext}"))}


def run(sandboxes, coverage, language: str, samples: list[dict]) -> list[dict]:
    return execute_translated(coverage[language].translated, samples, sandboxes(language), LANGUAGES[language], workers=2)


def test_language_names_match_the_registry():
    assert LANGUAGE_NAMES == ("python", *LANGUAGES)


@pytest.mark.parametrize("language", list(LANGUAGES))
def test_coverage_and_reasons(coverage, language):
    cov = coverage[language]
    assert len(cov.translated) + len(cov.untranslated) == 164
    assert len(cov.translated) >= 150
    assert cov.untranslated["HumanEval/22"] == "untranslatable type Any"
    assert "helper is_palindrome()" in cov.untranslated["HumanEval/10"]
    assert all(reason for reason in cov.untranslated.values())
    assert "HumanEval/78" in cov.translated and cov.translated["HumanEval/78"].dropped  # the one [] test


@pytest.mark.parametrize("language", list(LANGUAGES))
def test_prompt_ends_at_the_opening_brace_with_the_python_names(coverage, language):
    t = coverage[language].translated["HumanEval/0"]
    name = "hasCloseElements(" if language == "java" else "has_close_elements("
    assert t.prompt.endswith("{\n") and name in t.prompt.splitlines()[-1]
    if language != "sh":
        assert "numbers" in t.prompt.splitlines()[-1] and "threshold" in t.prompt.splitlines()[-1]
    assert t.stop_tokens == LANGUAGES[language].stop_tokens
    assert "Check if in given" in t.prompt and "of numbers, are any two numbers" in t.prompt


def test_signatures_follow_multipl_e_types(coverage):
    cpp, java = coverage["cpp"].translated, coverage["java"].translated
    assert cpp["HumanEval/0"].prompt.splitlines()[-1] == "bool has_close_elements(std::vector<float> numbers, float threshold) {"
    assert cpp["HumanEval/12"].prompt.splitlines()[-1] == "std::optional<std::string> longest(std::vector<std::string> strings) {"
    assert cpp["HumanEval/8"].prompt.splitlines()[-1] == "std::tuple<long, long> sum_product(std::vector<long> numbers) {"
    assert java["HumanEval/111"].prompt.splitlines()[-1] == "    public static HashMap<String,Long> histogram(String test) {"
    assert "// >>> sum_product((std::vector<long>({(long)1, (long)2, (long)3, (long)4})))" in cpp["HumanEval/8"].prompt


@pytest.mark.parametrize("language", list(LANGUAGES))
def test_references_pass(sandboxes, coverage, language):
    refs = references(language)
    assert len(refs) >= 20
    one_by_one = dict(list(refs.items())[:PER_PROGRAM]) if language in COMPILED else refs
    results = run(sandboxes, coverage, language, [{"task_id": t, "completion": c} for t, c in one_by_one.items()])
    assert [(r["task_id"], r["result"]) for r in results if not r["passed"]] == []
    if language in COMPILED:
        translated = coverage[language].translated
        outcomes = batch(sandboxes(language), language, {t: (translated[t], c) for t, c in refs.items()})
        assert outcomes == {t: "passed" for t in refs}


@pytest.mark.parametrize("language", list(LANGUAGES))
def test_wrong_variants_and_syntax_errors_fail(sandboxes, coverage, language):
    refs = references(language)
    samples = []
    for task, old, new in WRONG[language]:
        assert old in refs[task], f"{language} {task}: {old!r} is not in the reference"
        samples.append({"task_id": task, "completion": refs[task].replace(old, new)})
    samples.append({"task_id": "HumanEval/53", "completion": SYNTAX_ERROR[language]})
    results = run(sandboxes, coverage, language, samples)
    assert [r["passed"] for r in results] == [False] * len(samples)
    assert results[-1]["result"] == "failed: compile error"


@pytest.mark.parametrize("language", list(LANGUAGES))
def test_a_stub_fails_on_every_problem(sandboxes, coverage, language, problems):
    translated = coverage[language].translated
    stubs = {t: stub(language, parse_problem(problems[t]).return_type) for t in translated}
    if language in COMPILED:  # one compile; a compile error anywhere fails the whole batch loudly
        outcomes = batch(sandboxes(language), language, {t: (translated[t], c) for t, c in stubs.items()})
        assert outcomes == {t: "failed" for t in translated}
        return
    results = run(sandboxes, coverage, language, [{"task_id": t, "completion": c} for t, c in stubs.items()])
    assert [r["task_id"] for r in results if r["passed"]] == []
    assert not any(r["result"] == "failed: compile error" for r in results)  # each stub reached the tests


@pytest.mark.parametrize("language", list(LANGUAGES))
def test_the_start_up_reference_passes(sandboxes, coverage, language):
    task, completion = LANGUAGES[language].reference
    assert task == "HumanEval/53"
    [result] = run(sandboxes, coverage, language, [{"task_id": task, "completion": completion}])
    assert result["passed"], result["result"]


@pytest.mark.parametrize("language", list(CLOSED))
def test_a_completion_that_closes_the_function_fails_as_in_multipl_e(sandboxes, coverage, language):
    lang = LANGUAGES[language]
    samples = [{"task_id": "HumanEval/53", "completion": CLOSED[language]},
               {"task_id": "HumanEval/53", "completion": lang.finish_completion(CLOSED[language] + "\n")}]  # fmt: skip
    results = run(sandboxes, coverage, language, samples)
    assert [r["passed"] for r in results] == [False, True]
    assert results[0]["result"] == "failed: compile error"
