"""C++ (``cpp``, g++ -std=c++17): MultiPL-E's prompt, types and ``assert(candidate(...) == ...)`` tests.

As MultiPL-E writes it: ``#include<assert.h>`` and ``#include<bits/stdc++.h>``, int → ``long``,
float → ``float`` (literals ``1.5f``), str → ``std::string``, list → ``std::vector``, dict →
``std::map``, Optional → ``std::optional``, tuple → ``std::tuple`` (``std::make_tuple``); the
parameter ``operator`` is ``op`` and the function ``strlen`` is ``string_length``. A literal is
typed by its own value (``[]`` is ``std::vector<long>()``, ``1`` is ``long``); where that differs
from the parameter's type it is coerced the way MultiPL-E coerces it (the first constructor
renamed, or ``T(x)`` around a scalar). The tests begin with the function's ``}``, then
``int main()`` with ``auto candidate = f;``. A tolerance test (which MultiPL-E cannot translate:
it drops the problem) becomes ``assert(std::abs(...) < tol)``, and is left out when ``float``
cannot hold its values that closely. ``bits/stdc++.h`` costs ~1.6 s per compile instead of ~0.7 s;
compilation gets 2 GiB of address space and ``COMPILE_S`` (processes: 32).
"""

from __future__ import annotations

import re
import struct
from typing import Any

from llmfoundry_lite.eval.languages.base import Language
from llmfoundry_lite.eval.languages.js import number
from llmfoundry_lite.eval.languages.pymodel import PyProblem, Test, Ty, Untranslatable
from llmfoundry_lite.sandbox import Job, SandboxConfig, Step, rlimit_spec

COMPILE_MEMORY_MB = 2048
COMPILE_PROCESSES = 32
COMPILE_S = 20.0
"""Wall-clock seconds for g++: ~1.6 s idle with bits/stdc++.h, 4.5 s measured on 2 cores at load 16."""
RENAMED = {"operator": "op", "strlen": "string_length"}
"""MultiPL-E's C++ names for Python names that clash with C++ (also used in Java)."""


def float32_error(v: Any) -> float:
    """How far ``v``'s floats move when stored as a 32-bit float (the largest over a structure)."""
    if isinstance(v, bool) or v is None or isinstance(v, str):
        return 0.0
    if isinstance(v, (int, float)):
        return abs(struct.unpack("f", struct.pack("f", float(v)))[0] - v) if abs(v) < 3e38 else float("inf")
    items = list(v.items()) if isinstance(v, dict) else list(v)
    return max((float32_error(x) for x in items), default=0.0)


def conform(v: Any, t: Ty, widen: bool = False) -> Any:
    """``v`` with every tuple typed as a list made a list (MultiPL-E's ``Tuple[str, ...]`` → vector); with
    ``widen``, the ints of a list of floats made floats (Java: ``(long)1l`` cannot fill an ``ArrayList<Float>``)."""
    if t.kind == "list" and isinstance(v, (list, tuple)):
        if widen and t.args[0].kind == "float":
            v = [float(x) if isinstance(x, int) and not isinstance(x, bool) else x for x in v]
        return [conform(x, t.args[0], widen) for x in v]
    if t.kind == "tuple" and isinstance(v, tuple):
        return tuple(conform(x, xt, widen) for x, xt in zip(v, t.args, strict=True))
    if t.kind == "dict" and isinstance(v, dict):
        return {conform(k, t.args[0], widen): conform(x, t.args[1], widen) for k, x in v.items()}
    return conform(v, t.args[0], widen) if t.kind == "optional" and v is not None else v


class Cpp(Language):
    name = "cpp"
    extension = "cpp"
    stop_tokens = ("\n}",)
    terms = {"Python": "C++", "py": "cpp", "array": "vector", "list": "vector", "tuple": "tuple",
             "dictionary": "map", "None": "None", "True": "true", "False": "false"}  # fmt: skip
    tools = ("g++",)
    reference = ("HumanEval/53", "    return x + y;")
    scalars = {"int": "long", "float": "float", "bool": "bool", "str": "std::string"}
    nothing = "std::nullopt"
    any_type = "std::any"
    widen_mixed = False
    make_tuple = "std::make_tuple"

    # --- types and values, as MultiPL-E spells them -------------------------------------
    def type_name(self, t: Ty) -> str:
        if t.kind in self.scalars:
            return self.scalars[t.kind]
        args = [self.type_name(a) for a in t.args]
        if t.kind == "list":
            return self.list_type(args[0])
        if t.kind == "dict":
            return self.dict_type(*args)
        return self.wrapper_type(t, args)

    def wrapper_type(self, t: Ty, args: list[str]) -> str:
        """An Optional or a tuple of the type names ``args``."""
        if t.kind in ("optional", "tuple"):
            return f"std::{t.kind}<{', '.join(args)}>"
        raise Untranslatable(f"no C++ type for {t}")

    def value_type(self, v: Any) -> str:
        """The type MultiPL-E gives a literal: by its value (a container by its first element)."""
        for py, kind in ((bool, "bool"), (str, "str"), (int, "int"), (float, "float")):
            if isinstance(v, py):
                return self.scalars[kind]
        if v is None:
            return self.nothing
        if isinstance(v, list):
            return self.list_type(self.element_type(v))
        if isinstance(v, tuple):
            return self.tuple_type([self.value_type(x) for x in v])
        k, x = next(iter(v.items()), (0, 0))
        return self.dict_type(self.value_type(k), self.value_type(x))

    def element_type(self, v: list) -> str:
        """A list's element type as MultiPL-E types it: its first element's (``long`` when empty). Where
        ints come first and floats follow, MultiPL-E casts every element to ``long``; we use ``float``
        where that cast would change a value (``(long)0.3f``), and always in Java (``(long)2.0f`` does
        not compile in an ``ArrayList<Float>``)."""
        types = [self.value_type(x) for x in v] or [self.scalars["int"]]
        mixed = {self.scalars["int"], self.scalars["float"]} <= set(types)
        if mixed and (self.widen_mixed or any(isinstance(x, float) and not x.is_integer() for x in v)):
            return self.scalars["float"]
        return types[0]

    def list_type(self, element: str) -> str:
        return f"std::vector<{element}>"

    def tuple_type(self, elements: list[str]) -> str:
        return f"std::tuple<{', '.join(elements)}>"

    def dict_type(self, key: str, value: str) -> str:
        return f"std::map<{key},{value}>"

    def scalar(self, v: Any) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, str):
            return '"' + v.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'
        if isinstance(v, float):
            return number(v) + "f"
        return repr(v) if v is not None else self.nothing

    def value(self, v: Any) -> str:
        """A literal spelled by its own value: a list casts each element to its element type (the
        first element's; the first float's when ints and floats mix, where MultiPL-E's ``(long)2.5f``
        would truncate), or to nothing when a non-scalar element's type differs (``std::any``)."""
        if isinstance(v, list):
            if not v:
                return self.make_list(self.scalars["int"], "")
            types, element = [self.value_type(x) for x in v], self.element_type(v)
            primitive = {self.scalars[k] for k in ("int", "float", "bool")}
            if any(t != element and t not in primitive for t in types):
                return self.make_list(self.any_type, ", ".join(self.value(x) for x in v))
            return self.make_list(element, ", ".join(f"({element}){self.value(x)}" for x in v))
        if isinstance(v, tuple):
            return self.tuple_value(v)
        if isinstance(v, dict):
            if not v:
                return self.make_dict(self.dict_type("long", "long"), [])
            k, x = next(iter(v.items()))
            return self.make_dict(self.dict_type(self.value_type(k), self.value_type(x)),
                                  [(self.value(a), self.value(b)) for a, b in v.items()])  # fmt: skip
        return self.scalar(v)

    def make_list(self, element: str, items: str) -> str:
        return f"{self.list_type(element)}({{{items}}})" if items else f"{self.list_type(element)}()"

    def make_dict(self, type_name: str, items: list[tuple[str, str]]) -> str:
        return f"{type_name}({{{', '.join(f'{{{k}, {x}}}' for k, x in items)}}})" if items else f"{type_name}()"

    def tuple_value(self, v: tuple) -> str:
        if None in v:
            other = next((self.value_type(x) for x in v if x is not None), "long")
            return f"{self.make_tuple}({', '.join(f'std::optional<{other}>({self.value(x)})' for x in v)})"
        return f"{self.make_tuple}({', '.join(self.value(x) for x in v)})"

    def coerce(self, v: Any, expected: str) -> str:
        """A literal where a value of type ``expected`` is wanted, parenthesized or re-typed as MultiPL-E does."""
        text = self.value(v)
        if self.value_type(v) == expected:
            return f"({text})"
        if text.startswith(self.make_tuple) or text.startswith(self.nothing) or "std::optional" in expected:
            return text
        head = re.match(r".+?\(", text)
        coerced = f"{expected}({text})" if head is None else text.replace(head.group(), f"{expected}(")
        return f"({coerced.replace('(())', '()')})"

    # --- prompt and tests ---------------------------------------------------------------
    def function_name(self, p: PyProblem) -> str:
        return RENAMED.get(p.name, p.name)

    def call(self, name: str, p: PyProblem, args: tuple) -> str:
        spelled = [self.coerce(conform(a, t, self.widen_mixed), self.type_name(t)) for a, t in zip(args, p.param_types, strict=True)]
        return f"{name}({', '.join(spelled)})"

    def result(self, p: PyProblem, expected: Any) -> str:
        return self.coerce(conform(expected, p.return_type, self.widen_mixed), self.type_name(p.return_type))

    def example(self, p: PyProblem, args: tuple, expected: Any) -> tuple[str, str]:
        return self.call(self.function_name(p), p, args), self.result(p, expected)

    def params(self, p: PyProblem) -> str:
        return ", ".join(f"{self.type_name(t)} {RENAMED.get(n, n)}" for n, t in zip(p.params, p.param_types, strict=True))

    def prompt(self, p: PyProblem) -> str:
        header = "#include<assert.h>\n#include<bits/stdc++.h>\n"
        signature = f"{self.type_name(p.return_type)} {self.function_name(p)}({self.params(p)})"
        return f"{header}{self.description(p, '// ', '// ')}{signature} {{\n"

    def unsupported(self, p: PyProblem, t: Test) -> str | None:
        if t.tolerance is not None and max(float32_error(t.args), float32_error(t.expected)) * 4 > t.tolerance:
            return f"float cannot hold its values within {t.tolerance!r}"
        return None

    def assertion(self, p: PyProblem, t: Test, name: str) -> str:
        call = self.call(name, p, t.args)
        if t.tolerance is not None:
            return f"    assert(std::abs({call} - {number(t.expected)}) < {number(t.tolerance)});"
        return f"    assert({call} == {self.result(p, t.expected)});"

    def test_suite(self, p: PyProblem, tests: list[Test]) -> str:
        lines = ["}", "int main() {", f"    auto candidate = {self.function_name(p)};"]
        return "\n".join([*lines, *(self.assertion(p, t, "candidate") for t in tests), "}\n"])

    def job(self, program: str, cfg: SandboxConfig) -> Job:
        compile_limits = rlimit_spec(cfg, COMPILE_S, max(cfg.memory_mb, COMPILE_MEMORY_MB),
                                     max(cfg.max_processes, COMPILE_PROCESSES))  # fmt: skip
        build = Step((self.tool("g++"), "-std=c++17", "-O0", "-pipe", "-o", "program", "program.cpp"), "compile",
                     COMPILE_S, compile_limits)  # fmt: skip
        run = Step(("./program",), "run", cfg.timeout, rlimit_spec(cfg, cfg.timeout))
        return Job({"program.cpp": program.encode("utf-8", "surrogatepass")}, (build, run))
