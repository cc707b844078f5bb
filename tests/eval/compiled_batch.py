"""Many C++ or Java problems in one compile, for tests: one g++/javac run instead of one per problem.

A compile costs ~0.7 s (g++) or ~1.5 s (javac) before any test runs, so checking ~160 stubs one
program each would take minutes on two cores. Here every problem keeps its own translated
prompt, completion and tests, isolated from the others (a C++ ``namespace`` per problem, a
Java class ``Problem_N`` per problem), and one driver runs each problem's tests in turn and
prints ``<task_id> passed|failed``: C++ in a forked child per problem (a failed ``assert``
aborts only that child), Java by reflection (an ``AssertionError`` fails only that problem).
The sandbox, toolchain and flags are the languages' own; only the packaging differs, so the
per-problem job path is still tested by the references and wrong variants run one by one.
"""

from __future__ import annotations

import re

from llmfoundry_lite.eval.languages import LANGUAGES
from llmfoundry_lite.eval.languages.base import Translated
from llmfoundry_lite.eval.languages.java import JVM_FLAGS
from llmfoundry_lite.sandbox import Job, Sandbox, SandboxConfig, Step, rlimit_spec

BATCH_S = 120.0
CPP_DRIVER = """
#include <cstdio>
#include <sys/wait.h>
#include <unistd.h>
int main() {
    struct Case { const char* task; int (*run)(); } cases[] = {%s};
    for (const Case& c : cases) {
        std::fflush(stdout);
        pid_t pid = fork();
        if (pid == 0) { c.run(); std::fflush(stdout); _exit(0); }
        int status = 0;
        waitpid(pid, &status, 0);
        std::printf("%%s %%s\\n", c.task, WIFEXITED(status) && WEXITSTATUS(status) == 0 ? "passed" : "failed");
    }
}
"""
JAVA_DRIVER = """
class Driver {
    public static void main(String[] classes) throws Exception {
        for (String name : classes) {
            String task = "HumanEval/" + name.substring("Problem_".length());
            try {
                Class.forName(name).getMethod("main", String[].class).invoke(null, (Object) new String[0]);
                System.out.println(task + " passed");
            } catch (java.lang.reflect.InvocationTargetException e) {
                System.out.println(task + " failed");
            }
        }
    }
}
"""


def _number(task_id: str) -> str:
    return task_id.split("/")[1]


def cpp_job(programs: dict[str, tuple[Translated, str]], cfg: SandboxConfig) -> Job:
    """One program: the shared headers, then each problem in ``namespace p_N``, then the driver."""
    parts, cases = [], []
    for task, (t, completion) in programs.items():
        n = _number(task)
        body = "".join(line + "\n" for line in t.prompt.splitlines() if not line.startswith("#include"))
        tests = t.tests.replace("int main() {", "int test_main() {", 1)
        parts.append(f"namespace p_{n} {{\n{body}{completion}\n{tests}}}\n")
        cases.append(f'{{"{task}", p_{n}::test_main}}')
    headers = "".join(line + "\n" for line in next(iter(programs.values()))[0].prompt.splitlines() if line.startswith("#include"))
    source = headers + "".join(parts) + CPP_DRIVER % ", ".join(cases)
    g = LANGUAGES["cpp"].tool("g++")
    limits = rlimit_spec(cfg, BATCH_S, 4096, 64)
    build = Step((g, "-std=c++17", "-O0", "-pipe", "-w", "-o", "batch", "batch.cpp"), "compile", BATCH_S, limits)
    return Job({"batch.cpp": source.encode()}, (build, Step(("./batch",), "run", BATCH_S, limits)))


def java_job(programs: dict[str, tuple[Translated, str]], cfg: SandboxConfig) -> Job:
    """One javac over ``Problem_N.java`` files (each problem's class renamed), then the driver."""
    files = {"Driver.java": JAVA_DRIVER.encode()}
    for task, (t, completion) in programs.items():
        n = _number(task)
        files[f"Problem_{n}.java"] = t.program(completion).replace("class Problem {", f"class Problem_{n} {{", 1).encode()
    java = LANGUAGES["java"]
    limits = rlimit_spec(cfg, BATCH_S, 4096, 64)
    javac = (java.tool("javac"), *(f"-J{f}" for f in JVM_FLAGS), "-encoding", "UTF-8", *files)
    classes = [f"Problem_{_number(t)}" for t in programs]
    run = Step((java.tool("java"), *JVM_FLAGS, "-ea", "Driver", *classes), "run", BATCH_S, limits)
    return Job(files, (Step(javac, "compile", BATCH_S, limits), run))


BATCH_JOBS = {"cpp": cpp_job, "java": java_job}


def run_batch(sandbox: Sandbox, language: str, programs: dict[str, tuple[Translated, str]]) -> dict[str, str]:
    """task_id → ``passed`` / ``failed`` for every program, from one compile and one run."""
    result = sandbox.run_job(BATCH_JOBS[language](programs, sandbox.cfg))
    if result.result != "passed":
        raise AssertionError(f"the {language} batch did not run: {result.result}\n{result.output[-3000:]}")
    return dict(re.findall(r"^(HumanEval/\d+) (passed|failed)$", result.output, re.MULTILINE))
