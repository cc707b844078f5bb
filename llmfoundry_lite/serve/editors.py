"""A simulated population of editor users against a live server: the feedback loop's traffic.

Each user asks for completions of HumanEval-style prompts (the languages' problem files that
``eval/humaneval.py --write-problems`` writes) with its own ``user`` id, is shown every choice,
and accepts a choice when it would keep it in a file: the prompt plus the completion (plus the
closing brace a brace language's stop sequence cut off) parses with the filter stage's parser, and
the completion is neither empty nor a degenerate repetition; otherwise it rejects it. Every event
goes to ``POST /v1/feedback``. The rule is mechanical, so a better model moves it: that is the
point of the loop, not a claim about how people judge code.
"""

from __future__ import annotations

import json
import random
import re
import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from llmfoundry_lite.filtering.config import ParseConfig
from llmfoundry_lite.filtering.parse import parse_error

STACK_NAMES = {"python": "Python", "js": "JavaScript", "cpp": "C++", "java": "Java"}
"""Problem-file language (``eval/humaneval.py --language``) → The Stack's name, which the parser and
the server's ``language`` field take."""
BRACES = {"js", "cpp", "java"}
"""Languages whose stop sequence (``\\n}``) cuts the function's closing brace off the completion."""
_RUN = re.compile(r"(.{3,}?)\1{4,}", re.S)
"""A stretch of at least 3 characters repeated 5 times in a row: the small model's loops."""


def degenerate(completion: str) -> bool:
    """A repetition nobody would keep: one short stretch looping, or one line making up over a
    third of at least 3 non-blank lines."""
    if _RUN.search(completion):
        return True
    lines = [line.strip() for line in completion.splitlines() if line.strip()]
    return len(lines) >= 3 and Counter(lines).most_common(1)[0][1] * 3 > len(lines)


def verdict(language: str, prompt: str, completion: str, parse: ParseConfig | None = None) -> str:
    """``accepted``, or why the simulated user rejects it: ``empty``, ``repetition``, ``parse_error``."""
    if not completion.strip() or all(line.strip().startswith(("#", "//")) for line in completion.splitlines()
                                     if line.strip()):  # fmt: skip
        return "empty"
    if degenerate(completion):
        return "repetition"
    source = prompt + completion + ("\n}\n" if language in BRACES else "\n")
    doc = {"content": source, "lang": STACK_NAMES[language], "path": ""}
    return "parse_error" if parse_error(doc, parse or ParseConfig()) is not None else "accepted"


def load_prompts(paths: list[Path]) -> list[dict]:
    """The problems of each ``--write-problems`` file (task_id, language, prompt, stop_tokens), in order."""
    problems = []
    for path in paths:
        for line in path.read_text().splitlines():
            row = json.loads(line)
            if row["language"] not in STACK_NAMES:
                raise ValueError(f"{path}: language {row['language']!r} has no parser here; use {sorted(STACK_NAMES)}")
            problems.append(row)
    return problems


@dataclass(frozen=True)
class Population:
    """Who asks what, how."""

    users: int = 40
    requests_per_user: int = 8
    n: int = 2
    """Choices shown per request (each judged on its own)."""
    temperature: float = 0.8
    top_p: float = 0.95
    max_tokens: int = 96
    concurrency: int = 4
    """Users active at once."""
    seed: int = 0
    user_prefix: str = "editor"
    single_line: bool = False
    """Line completions: every request also stops at the end of its first line, as an editor's inline
    suggestion does; otherwise the problem's own stop sequences end it."""


@dataclass
class Tally:
    """What the simulated users did, by (variant, language)."""

    shown: Counter = field(default_factory=Counter)
    accepted: Counter = field(default_factory=Counter)
    reasons: Counter = field(default_factory=Counter)
    """(variant, language, verdict) → choices."""
    failures: Counter = field(default_factory=Counter)
    """Requests the server refused, by ``status error-code`` (a prompt too long for the context is 400)."""
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, variant: str, language: str, why: str) -> None:
        with self._lock:  # users run on several threads; a Counter's += is not atomic
            self.shown[variant, language] += 1
            self.accepted[variant, language] += why == "accepted"
            self.reasons[variant, language, why] += 1

    @property
    def failed_requests(self) -> int:
        return sum(self.failures.values())

    def failed(self, response: httpx.Response) -> None:
        try:
            code = response.json()["error"]["code"] or response.json()["error"]["param"]
        except (ValueError, KeyError, TypeError):
            code = "?"
        with self._lock:
            self.failures[f"{response.status_code} {code}"] += 1


def simulate(url: str, problems: list[dict], population: Population, api_key: str | None = None) -> Tally:
    """Run the population against the server at ``url``; every event is posted, every choice tallied."""
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    tally = Tally()

    def user(u: int) -> None:
        rng = random.Random(population.seed * 1_000_003 + u)
        name = f"{population.user_prefix}-{u}"
        with httpx.Client(base_url=url, headers=headers, timeout=300) as http:
            for _ in range(population.requests_per_user):
                problem = rng.choice(problems)
                r = http.post("/v1/completions", json={
                    "prompt": problem["prompt"], "max_tokens": population.max_tokens, "n": population.n,
                    "temperature": population.temperature, "top_p": population.top_p,
                    "stop": ["\n"] if population.single_line else problem["stop_tokens"],
                    "user": name, "language": STACK_NAMES[problem["language"]].lower(),
                    "seed": rng.randrange(2**31)})  # fmt: skip
                if r.status_code != 200:
                    tally.failed(r)
                    continue
                body = r.json()
                for choice in body["choices"]:
                    why = verdict(problem["language"], problem["prompt"], choice["text"])
                    for event in ("shown", "accepted" if why == "accepted" else "rejected"):
                        fb = http.post("/v1/feedback", json={"id": body["id"], "index": choice["index"],
                                                             "event": event, "user": name})  # fmt: skip
                        fb.raise_for_status()
                    tally.add(body["model"], STACK_NAMES[problem["language"]].lower(), why)

    with ThreadPoolExecutor(population.concurrency) as pool:
        list(pool.map(user, range(population.users)))
    return tally


PYTHON_STOPS = ["\ndef ", "\nclass ", "\nif __name__", "\nprint(", "\n@", "\n#"]
"""Where a Python function's completion ends (HumanEval's stop sequences, as the harness uses them)."""


def corpus_prompts(kept: Path, per_language: int, seed: int = 0, max_chars: int = 1200) -> list[dict]:
    """HumanEval-style prompts (imports, signature, docstring → body) from the documented functions of
    a filtered corpus (``data/filtered/kept``): Python and JavaScript, up to ``per_language`` each,
    drawn at random (seeded) from all the corpus holds. Prompts, not HumanEval's problems, so the
    feedback they earn survives decontamination against the evaluation sets. Prompts longer than
    ``max_chars`` are left out: with the completion they would not fit a small model's context."""
    import pyarrow.parquet as pq

    from llmfoundry_lite.synth.extract import extract_functions
    from llmfoundry_lite.synth.extract_js import extract_javascript

    found: dict[str, list[dict]] = {"python": [], "js": []}
    for part in sorted(kept.glob("*.parquet")):
        table = pq.read_table(part, columns=["path", "content", "lang"])
        for path, text, lang in zip(*(table.column(c).to_pylist() for c in ("path", "content", "lang")), strict=True):
            if lang == "Python":
                try:
                    functions = extract_functions(text)
                except (SyntaxError, ValueError, RecursionError):  # the filter kept it; ast may still refuse
                    continue
                found["python"] += [{"task_id": f"{path}:{f.qualname}", "language": "python", "prompt": f.code,
                                     "stop_tokens": PYTHON_STOPS} for f in functions if f.body.strip() and not f.inline]
            elif lang == "JavaScript":
                doc = lambda f: "".join(f"// {line}\n" for line in f.docstring.splitlines())  # noqa: E731
                found["js"] += [{"task_id": f"{path}:{f.qualname}", "language": "js", "prompt": doc(f) + f.code,
                                 "stop_tokens": ["\n}"]} for f in extract_javascript(text, path)
                                if not f.inline and not f.expression_body and not f.trivial]  # fmt: skip
    rng = random.Random(seed)
    found = {language: [r for r in rows if len(r["prompt"]) <= max_chars] for language, rows in found.items()}
    prompts = []
    for rows in found.values():
        rng.shuffle(rows)
        prompts += rows[:per_language]
    return prompts
