"""Java (``java``, JDK 17 javac + java -ea): MultiPL-E's types in a ``class Problem``.

int → ``long`` (``Long`` inside generics), float → ``double`` (MultiPL-E: ``float``; see
``cpp.py`` for why), str → ``String``,
list → ``ArrayList``, dict → ``HashMap``, Optional → ``Optional``, a 2-tuple → ``Pair`` (a
record declared in the prompt with javatuples' ``Pair.with``, since org.javatuples is not on
the classpath); tests are ``assert(Objects.equals(...))``, deep for collections, run with
``-ea``. Both javac and java are JVMs: with the serial GC, a 256 MiB heap, a 64 MiB code cache
and a 64 MiB class space one maps ~1.2 GiB, so each gets 3 GiB of address space (the default
1 GiB class space alone does not fit in the Python limit) and 64 threads; javac takes ~1 s
idle, so compilation gets 15 s.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from llmfoundry_lite.eval.languages.base import Language
from llmfoundry_lite.eval.languages.js import number
from llmfoundry_lite.eval.languages.pymodel import PyProblem, Ty, Untranslatable
from llmfoundry_lite.sandbox import Job, SandboxConfig, Step, rlimit_spec

IMPORTS = ("java.util.*", "java.util.stream.*", "java.math.*")
PAIR = ("    record Pair<A, B>(A first, B second) {\n"
        "        static <A, B> Pair<A, B> with(A first, B second) { return new Pair<>(first, second); }\n    }\n")  # fmt: skip
JVM_FLAGS = ("-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1", "-XX:-UsePerfData", "-Xshare:auto", "-Xmx256m",
             "-Xss16m", "-XX:ReservedCodeCacheSize=64m", "-XX:CompressedClassSpaceSize=64m",
             "-XX:MaxMetaspaceSize=256m")  # fmt: skip
MEMORY_MB = 3072
PROCESSES = 64
COMPILE_S = 15.0
STARTUP_S = 2.0
BOXED = {"long": "Long", "double": "Double", "boolean": "Boolean"}


class Java(Language):
    name = "java"
    extension = "java"
    stop_tokens = ("\n    }\n",)
    closing_stop = "\n    }\n"
    reserved = frozenset(
        "abstract assert boolean break byte case catch char class const continue default do double "
        "else enum extends final finally float for goto if implements import instanceof int "
        "interface long native new package private protected public return short static strictfp "
        "super switch synchronized this throw throws transient try void volatile while true false "
        "null var record"
        .split()
    )
    tools = ("javac", "java")

    def type_name(self, t: Ty, boxed: bool = False) -> str:
        scalar = {"int": "long", "float": "double", "bool": "boolean", "str": "String"}
        if t.kind in scalar:
            name = scalar[t.kind]
            return BOXED.get(name, name) if boxed else name
        generic = {"list": "ArrayList", "dict": "HashMap", "optional": "Optional"}
        if t.kind in generic:
            return f"{generic[t.kind]}<{','.join(self.type_name(a, True) for a in t.args)}>"
        if t.kind == "tuple" and len(t.args) == 2:
            return f"Pair<{','.join(self.type_name(a, True) for a in t.args)}>"
        raise Untranslatable(f"no Java type for {t}")

    def value(self, v: Any, t: Ty) -> str:
        if t.kind == "optional":
            return "Optional.empty()" if v is None else f"Optional.of({self.value(v, t.args[0])})"
        if t.kind == "bool":
            return "true" if v else "false"
        if t.kind == "int":
            return f"{int(v)}L"
        if t.kind == "float":
            return number(v)
        if t.kind == "str":
            return json.dumps(v)
        if t.kind == "list":
            items = ", ".join(self.value(x, t.args[0]) for x in v)
            return f"new {self.type_name(t)}(Arrays.asList({items}))"
        if t.kind == "tuple" and len(t.args) == 2:
            return f"Pair.with({self.value(v[0], t.args[0])}, {self.value(v[1], t.args[1])})"
        if t.kind == "dict":
            items = ", ".join(f"Map.entry({self.value(k, t.args[0])}, {self.value(x, t.args[1])})" for k, x in v.items())
            return f"new {self.type_name(t)}(Map.ofEntries({items}))"
        raise Untranslatable(f"no Java spelling for type {t}")

    def header(self, p: PyProblem) -> str:
        return "".join(f"import {i};\n" for i in IMPORTS) + "\nclass Problem {\n" + PAIR

    def indent(self) -> str:
        return "    "

    def signature(self, p: PyProblem) -> str:
        params = ", ".join(f"{self.type_name(t)} {n}" for n, t in zip(self.param_names(p), p.param_types, strict=True))
        return f"public static {self.type_name(p.return_type)} {p.name}({params})"

    def test_suite(self, p: PyProblem) -> str:
        lines = ["    public static void main(String[] args) {"]
        for t in p.tests:
            call = self.call(p, t.args)
            if t.tolerance is None:
                lines.append(f"        assert(Objects.equals({call}, {self.value(t.expected, p.return_type)}));")
            else:
                lines.append(f"        assert(Math.abs({call} - {number(t.expected)}) < {number(t.tolerance)});")
        return "\n".join([*lines, "    }", "}", ""])

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
        javac = (self.tool("javac"), *(f"-J{f}" for f in JVM_FLAGS), "-encoding", "UTF-8", "Problem.java")
        build = Step(javac, "compile", COMPILE_S, limits)
        timeout = cfg.timeout + STARTUP_S
        run_limits = rlimit_spec(cfg, timeout, max(cfg.memory_mb, MEMORY_MB), max(cfg.max_processes, PROCESSES))
        run = Step((self.tool("java"), *JVM_FLAGS, "-ea", "Problem"), "run", timeout, run_limits)
        return Job({"Problem.java": program.encode("utf-8", "surrogatepass")}, (build, run))
