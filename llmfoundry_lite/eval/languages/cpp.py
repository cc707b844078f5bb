"""C++ (``cpp``, g++ -std=c++17): MultiPL-E's types, ``assert(candidate(...) == ...)`` tests.

int → ``long``, float → ``double`` (MultiPL-E uses ``float``, but Python's float is a double
and HumanEval/2's ``abs(f(123.456) - 0.456) < 1e-6`` is below float's resolution), str → ``std::string``, list →
``std::vector``, dict → ``std::map``, Optional → ``std::optional``, tuple → ``std::tuple``;
``==`` on these is deep. Instead of MultiPL-E's ``<bits/stdc++.h>`` the prompt includes the
standard headers a HumanEval solution uses: compiling one program then takes ~0.7 s instead
of ~1.6 s. cc1plus parses those headers in ~150 MiB but maps more, so compilation gets
2 GiB of address space and 8 s; g++ runs cc1plus, as, collect2 and ld (processes: 32).
"""

from __future__ import annotations

import json
from typing import Any

from llmfoundry_lite.eval.languages.base import Language
from llmfoundry_lite.eval.languages.js import number
from llmfoundry_lite.eval.languages.pymodel import PyProblem, Ty, Untranslatable
from llmfoundry_lite.sandbox import Job, SandboxConfig, Step, rlimit_spec

HEADERS = ("cassert", "algorithm", "climits", "cmath", "cstdlib", "map", "numeric", "optional", "set",
           "sstream", "string", "tuple", "unordered_map", "unordered_set", "vector")  # fmt: skip
COMPILE_MEMORY_MB = 2048
COMPILE_PROCESSES = 32
COMPILE_S = 8.0
"""Wall-clock seconds for g++ (~0.7 s idle; a busy 2-core machine runs several at once)."""


class Cpp(Language):
    name = "cpp"
    extension = "cpp"
    stop_tokens = ("\n}",)
    closing_stop = "\n}"
    reserved = frozenset(
        "alignas alignof and and_eq asm auto bitand bitor bool break case catch char char16_t "
        "char32_t class compl const constexpr const_cast continue decltype default delete do double "
        "dynamic_cast else enum explicit export extern false float for friend goto if inline int "
        "long mutable namespace new noexcept not not_eq nullptr operator or or_eq private protected "
        "public register reinterpret_cast return short signed sizeof static static_assert "
        "static_cast struct switch template this thread_local throw true try typedef typeid "
        "typename union unsigned using virtual void volatile wchar_t while xor xor_eq"
        .split()
    )
    tools = ("g++",)

    def type_name(self, t: Ty) -> str:
        scalar = {"int": "long", "float": "double", "bool": "bool", "str": "std::string"}
        if t.kind in scalar:
            return scalar[t.kind]
        generic = {"list": "std::vector", "dict": "std::map", "optional": "std::optional", "tuple": "std::tuple"}
        if t.kind in generic:
            return f"{generic[t.kind]}<{', '.join(self.type_name(a) for a in t.args)}>"
        raise Untranslatable(f"no C++ type for {t}")

    def value(self, v: Any, t: Ty) -> str:
        if t.kind == "optional":
            return "std::nullopt" if v is None else f"{self.type_name(t)}({self.value(v, t.args[0])})"
        if t.kind == "bool":
            return "true" if v else "false"
        if t.kind == "int":
            return f"{int(v)}"
        if t.kind == "float":
            return number(v)
        if t.kind == "str":
            return f"std::string({json.dumps(v)})"
        if t.kind == "list":
            return f"{self.type_name(t)}({{{', '.join(self.value(x, t.args[0]) for x in v)}}})"
        if t.kind == "tuple":
            return f"{self.type_name(t)}({', '.join(self.value(x, xt) for x, xt in zip(v, t.args, strict=True))})"
        if t.kind == "dict":
            items = ", ".join(f"{{{self.value(k, t.args[0])}, {self.value(x, t.args[1])}}}" for k, x in v.items())
            return f"{self.type_name(t)}({{{items}}})"
        raise Untranslatable(f"no C++ spelling for type {t}")

    def header(self, p: PyProblem) -> str:
        return "".join(f"#include <{h}>\n" for h in HEADERS)

    def signature(self, p: PyProblem) -> str:
        params = ", ".join(f"{self.type_name(t)} {n}" for n, t in zip(self.param_names(p), p.param_types, strict=True))
        return f"{self.type_name(p.return_type)} {p.name}({params})"

    def test_suite(self, p: PyProblem) -> str:
        params = ", ".join(self.type_name(t) for t in p.param_types)
        # the exact overload: HumanEval's strlen() must not be confused with the C library's
        lines = ["int main() {", f"    auto candidate = static_cast<{self.type_name(p.return_type)} (*)({params})>({p.name});"]
        for t in p.tests:
            call = "candidate" + self.call(p, t.args)[len(p.name):]
            if t.tolerance is None:
                lines.append(f"    assert(({call} == {self.value(t.expected, p.return_type)}));")  # (( )): commas in templates
            else:
                lines.append(f"    assert(std::abs({call} - {number(t.expected)}) < {number(t.tolerance)});")
        return "\n".join([*lines, "}", ""])

    def job(self, program: str, cfg: SandboxConfig) -> Job:
        compile_limits = rlimit_spec(cfg, COMPILE_S, max(cfg.memory_mb, COMPILE_MEMORY_MB),
                                     max(cfg.max_processes, COMPILE_PROCESSES))  # fmt: skip
        build = Step((self.tool("g++"), "-std=c++17", "-O0", "-pipe", "-o", "program", "program.cpp"), "compile",
                     COMPILE_S, compile_limits)  # fmt: skip
        run = Step(("./program",), "run", cfg.timeout, rlimit_spec(cfg, cfg.timeout))
        return Job({"program.cpp": program.encode("utf-8", "surrogatepass")}, (build, run))
