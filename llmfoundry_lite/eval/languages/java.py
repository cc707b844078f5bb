"""Java (``java``, JDK 17 javac + java -ea): MultiPL-E's prompt in ``class Problem``, its types and asserts.

As MultiPL-E writes it: seven imports (``org.javatuples.*`` among them), ``class Problem {``, the
docstring as ``    //`` comments, ``public static`` methods named in camelCase (``has_close_elements``
→ ``hasCloseElements``: each ``_``-separated part after the first title-cased), int → ``long``
(``Long`` in generics, literals ``1l``), float → ``float`` (``1.5f``), str → ``String``, list →
``ArrayList`` (``new ArrayList<Long>(Arrays.asList(...))``), dict → ``HashMap`` (``Map.of``),
Optional → ``Optional``, a 2-tuple → javatuples' ``Pair``. The tests begin with the method's
``    }``, then ``main`` asserts ``f(...) == v`` for a primitive return type, ``f(...).equals(v)``
otherwise, run with ``-ea``. javatuples is not installed here: ``PAIR`` (this project's own
minimal ``org.javatuples.Pair``: ``with``, ``getValue0/1``, ``equals``, ``hashCode``) is compiled
with every program. Both javac and java are JVMs: with the serial GC, a 256 MiB heap, a 64 MiB code
cache and a 64 MiB class space one maps ~1.2 GiB, so each gets 3 GiB of address space and 64
threads; javac takes ~1 s idle, so compilation gets 15 s.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from llmfoundry_lite.eval.languages.cpp import RENAMED, Cpp
from llmfoundry_lite.eval.languages.js import number
from llmfoundry_lite.eval.languages.pymodel import PyProblem, Test, Ty, Untranslatable
from llmfoundry_lite.sandbox import Job, SandboxConfig, Step, rlimit_spec

IMPORTS = ("java.util.*", "java.lang.reflect.*", "org.javatuples.*", "java.security.*", "java.math.*", "java.io.*",
           "java.util.stream.*")  # fmt: skip
PAIR = """package org.javatuples;

public final class Pair<A, B> {
    private final A value0;
    private final B value1;
    public Pair(A value0, B value1) { this.value0 = value0; this.value1 = value1; }
    public static <A, B> Pair<A, B> with(A value0, B value1) { return new Pair<>(value0, value1); }
    public A getValue0() { return value0; }
    public B getValue1() { return value1; }
    @Override public boolean equals(Object o) {
        return o instanceof Pair<?, ?> p && java.util.Objects.equals(value0, p.value0) && java.util.Objects.equals(value1, p.value1);
    }
    @Override public int hashCode() { return java.util.Objects.hash(value0, value1); }
    @Override public String toString() { return "[" + value0 + ", " + value1 + "]"; }
}
"""
PAIR_FLAGS = ("-d", ".", "-sourcepath", "no-sources")
"""javac flags for compiling ``Pair.java`` beside the program: classes go to package dirs (``org/javatuples``),
and no source path, so that ``Pair`` in ``Problem`` is not looked up as ``./Pair.java`` of the default package."""
JVM_FLAGS = ("-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1", "-XX:-UsePerfData", "-Xshare:auto", "-Xmx256m",
             "-Xss16m", "-XX:ReservedCodeCacheSize=64m", "-XX:CompressedClassSpaceSize=64m",
             "-XX:MaxMetaspaceSize=256m")  # fmt: skip
MEMORY_MB = 3072
PROCESSES = 64
COMPILE_S = 15.0
STARTUP_S = 2.0
BOXED = {"long": "Long", "float": "Float", "boolean": "Boolean"}


def camel_case(name: str) -> str:
    """MultiPL-E's Java method name: the first ``_``-part as is, every later one ``str.title()``-d."""
    first, *rest = name.split("_")
    return first + "".join(part.title() for part in rest)


class Java(Cpp):
    name = "java"
    extension = "java"
    stop_tokens = ("\n    }\n",)
    terms = {"Python": "Java", "py": "java", "array": "array list", "list": "array list", "tuple": "pair",
             "dictionary": "hash map", "None": "null", "True": "true", "False": "false"}  # fmt: skip
    tools = ("javac", "java")
    reference = ("HumanEval/53", "        return x + y;")
    scalars = {"int": "long", "float": "float", "bool": "boolean", "str": "String"}
    nothing = "Optional.empty()"
    any_type = "Object"
    widen_mixed = True
    make_tuple = "Pair.with"

    def wrapper_type(self, t: Ty, args: list[str]) -> str:
        if t.kind == "optional":
            return f"Optional<{BOXED.get(args[0], args[0])}>"
        if t.kind == "tuple" and len(args) == 2:
            return self.tuple_type(args)
        raise Untranslatable(f"no Java type for {t}")

    def list_type(self, element: str) -> str:
        return f"ArrayList<{BOXED.get(element, element)}>"

    def tuple_type(self, elements: list[str]) -> str:
        return f"Pair<{', '.join(BOXED.get(e, e) for e in elements)}>"

    def dict_type(self, key: str, value: str) -> str:
        return f"HashMap<{BOXED.get(key, key)},{BOXED.get(value, value)}>"

    def scalar(self, v: Any) -> str:
        if isinstance(v, int) and not isinstance(v, bool):
            return f"{v!r}l"
        return super().scalar(v)

    def make_list(self, element: str, items: str) -> str:
        return f"new {self.list_type(element)}(Arrays.asList({items}))"

    def make_dict(self, type_name: str, items: list[tuple[str, str]]) -> str:
        return f"new {type_name}(Map.of({', '.join(f'{k}, {x}' for k, x in items)}))"

    def tuple_value(self, v: tuple) -> str:
        wrap = (lambda s: f"Optional.of({s})") if None in v else (lambda s: s)
        return f"{self.make_tuple}({', '.join(wrap(self.value(x)) for x in v)})"

    def coerce(self, v: Any, expected: str) -> str:
        """Java's coercion as MultiPL-E writes it: a cast to a primitive, ``Optional.of``, else C++'s rule
        with the constructor found after ``new``."""
        text, primitive = self.value(v), expected in BOXED
        if primitive and self.value_type(v) != expected:
            return f"({expected}){text}"
        if "Optional" in expected and self.nothing not in text:
            return f"Optional.of({text})"
        if self.value_type(v) == expected:
            return f"({text})"
        if text.startswith(self.make_tuple) or text.startswith(self.nothing) or "Optional" in expected:
            return text
        if "Arrays.asList(" in text:
            head: str | None = text[text.index("new ") + 4 : text.index("Arrays.asList(")]
        else:
            found = [] if "Optional.of(" in text else re.findall(r"new (.+)\(", text)
            head = found[0] if found else None
        coerced = f"{expected}({text})" if head is None else text.replace(head, f"{expected}(")
        return f"({coerced.replace('(())', '()')})"

    def function_name(self, p: PyProblem) -> str:
        return camel_case(p.name)

    def example(self, p: PyProblem, args: tuple, expected: Any) -> tuple[str, str]:
        """As in C++, but the call is named from C++'s renamed function (``strlen`` → ``stringLength``)."""
        return self.call(camel_case(RENAMED.get(p.name, p.name)), p, args), self.result(p, expected)

    def prompt(self, p: PyProblem) -> str:
        header = "".join(f"import {i};\n" for i in IMPORTS) + "class Problem {\n"
        signature = f"    public static {self.type_name(p.return_type)} {self.function_name(p)}({self.params(p)})"
        return f"{header}{self.description(p, '    // ', '    // ')}{signature} {{\n"

    def assertion(self, p: PyProblem, t: Test, name: str) -> str:
        call = self.call(name, p, t.args)
        if t.tolerance is not None:
            return f"    assert(Math.abs({call} - {number(t.expected)}) < {number(t.tolerance)});"
        expected = self.result(p, t.expected)
        return f"    assert({call} == {expected});" if self.type_name(p.return_type) in BOXED else f"    assert({call}.equals({expected}));"

    def test_suite(self, p: PyProblem, tests: list[Test]) -> str:
        lines = ["    }", "    public static void main(String[] args) {"]
        return "\n".join([*lines, *(self.assertion(p, t, self.function_name(p)) for t in tests), "    }\n", "}\n"])

    def binds(self) -> tuple[Path, ...]:
        """Dirs outside /usr that the JDK's files link to (Debian keeps its conf in /etc/java-N-openjdk)."""
        home = Path(self.tool("javac")).parent.parent
        targets = set()
        for root, dirs, files in os.walk(home):
            for name in (*dirs, *files):
                path = Path(root) / name
                if path.is_symlink() and path.resolve().parts[1:2] != ("usr",) and path.resolve().exists():
                    targets.add(Path(*path.resolve().parts[:3]))  # e.g. /etc/java-17-openjdk
        return tuple(sorted(targets))

    def job(self, program: str, cfg: SandboxConfig) -> Job:
        limits = rlimit_spec(cfg, COMPILE_S, max(cfg.memory_mb, MEMORY_MB), max(cfg.max_processes, PROCESSES))
        javac = (self.tool("javac"), *(f"-J{f}" for f in JVM_FLAGS), "-encoding", "UTF-8", *PAIR_FLAGS, "Problem.java",
                 "Pair.java")  # fmt: skip
        build = Step(javac, "compile", COMPILE_S, limits)
        timeout = cfg.timeout + STARTUP_S
        run_limits = rlimit_spec(cfg, timeout, max(cfg.memory_mb, MEMORY_MB), max(cfg.max_processes, PROCESSES))
        run = Step((self.tool("java"), *JVM_FLAGS, "-ea", "-cp", ".", "Problem"), "run", timeout, run_limits)
        return Job({"Problem.java": program.encode("utf-8", "surrogatepass"), "Pair.java": PAIR.encode()}, (build, run))
