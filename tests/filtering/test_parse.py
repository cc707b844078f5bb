import sysconfig
from collections import Counter
from pathlib import Path

import pytest

from llmfoundry_lite.corpus.readers import normalize
from llmfoundry_lite.filtering.config import FilterConfig, ParseConfig
from llmfoundry_lite.filtering.documents import first_rejection
from llmfoundry_lite.filtering.heuristics import line_stats
from llmfoundry_lite.filtering.parse import parse_error, python_error, python_verdict

VALID = {
    "JavaScript": ("a.js", "const add = (a, b) => a + b;\nclass A { m() { return 1; } }\n"),
    "TypeScript": ("a.ts", "interface P { x: number }\nexport function f(p: P): number { return p.x; }\n"),
    "Java": ("A.java", "public class A { int f(int x) { return x + 1; } }\n"),
    "C": ("a.c", "#include <stdio.h>\nint main(void) { printf(\"hi\\n\"); return 0; }\n"),
    "C++": ("a.cpp", "#include <vector>\ntemplate <typename T> T add(T a, T b) { return a + b; }\n"),
    "Go": ("a.go", "package main\n\nfunc add(a, b int) int { return a + b }\n"),
    "Rust": ("a.rs", "fn add(a: i32, b: i32) -> i32 { a + b }\n"),
}
BROKEN = {
    "JavaScript": "function f( { return 1;\n",
    "TypeScript": "export function f(: number { return }\n",
    "Java": "public class A { int f(int x) { return x + ; }\n",
    "C": "int main(void) { return (0 +; }} int y = ;\n",
    "C++": "class A { public: int f() { return 1 }\n",
    "Go": "package main\nfunc add(a, b int) int { return a + \n",
    "Rust": "fn add(a: i32 -> i32 { a }\n",
}


def check(lang: str, path: str, content: str, **cfg) -> tuple[str, str] | None:
    return parse_error({"lang": lang, "path": path, "content": content}, ParseConfig(**cfg))


@pytest.mark.parametrize("lang", sorted(VALID))
def test_tree_sitter_languages_accept_valid_and_reject_broken(lang):
    path, good = VALID[lang]
    assert check(lang, path, good) is None
    reason, detail = check(lang, path, BROKEN[lang])
    assert reason == "parse_error" and "syntax error at line" in detail


def test_python_valid_broken_python2_and_nul():
    assert python_error("def f(x):\n    return x\n") is None
    assert python_error("def f(x)\n    return x\n") == "line 1: expected ':'"
    assert python_error("print 'hello'\n").startswith("line 1: Missing parentheses")
    assert python_error("x = 1\x00\n") == "source code string cannot contain null bytes"


def test_python_is_never_executed(tmp_path):
    marker = tmp_path / "ran"
    assert python_error(f"open({str(marker)!r}, 'w').write('x')\n") is None
    assert not marker.exists()


def test_python_syntax_warning_is_not_an_error():
    assert python_error('path = "C:\\dir\\x"\nif 1 is 1: pass\n'.replace("\\x", "\\q")) is None


def test_unlisted_languages_pass_untested():
    assert check("Ruby", "a.rb", "def (((") is None
    assert check("Python", "a.py", "def (((", languages=["C"]) is None


def test_c_with_unexpanded_macros_is_tolerated_up_to_the_fraction():
    macro_heavy = "EXPORT_API int f(void);\n" + "int g(int x) { return x; }\n" * 40
    assert check("C", "a.h", macro_heavy) is None
    broken_much = "int f( {{{{ ;;; }\n" * 20
    assert check("C", "a.h", broken_much) is not None
    strict = check("C", "a.h", "int f() { return 1 }\n" + "int g(int x) { return x; }\n" * 40,
                   error_fraction_overrides={})
    assert strict is not None


def test_tsx_uses_the_tsx_grammar():
    tsx = "export const A = () => <div className=\"x\">{1}</div>;\n"
    assert check("TypeScript", "a.tsx", tsx) is None
    assert check("TypeScript", "a.ts", tsx) is not None


def test_unknown_parse_language_is_a_config_error():
    with pytest.raises(ValueError, match=r"parse.languages: no parser for \['Cobol'\]"):
        ParseConfig(languages=["Cobol"])


STDLIB = Path(sysconfig.get_paths()["stdlib"])
PY2_STDLIB = Path("/root/.pyenv/versions/2.7.18/lib/python2.7")  # a real Python 2 tree where the image has one
PY2 = {  # construct named in the detail -> Python 2 source using it
    "print_statement": 'import sys\nprint "hello", sys.argv\n',
    "exec_statement": 'code = "x = 1"\nexec code in {}\n',
    "except_comma": "try:\n    import json\nexcept ImportError, err:\n    json = None\n",
    "backtick_repr": "def show(x):\n    return `x`\n",
    "octal_or_long_literal": "import os\nos.chmod('f', 0755)\nBIG = 10L\n",
    "ur_string": "PATTERN = ur'\\d+'\n",
    "raise_comma": "def f(x):\n    if x < 0:\n        raise ValueError, 'negative'\n",
    "ne_operator": "if 1 <> 2:\n    pass\n",
    "tuple_parameter": "def dist((x1, y1), (x2, y2)):\n    return abs(x1 - x2) + abs(y1 - y2)\n",
}
NEWER = {  # construct -> 3.12+ source
    "type_alias": "type Vector = list[float]\n",
    "type_parameters": "def first[T](xs: list[T]) -> T:\n    return xs[0]\n\nclass Box[T]:\n    item: T\n",
    "fstring_pep701": 'names = ["a", "b"]\nprint(f"{", ".join(names)}")\n',
}


@pytest.mark.parametrize("construct", sorted(PY2))
def test_python2_constructs_get_their_own_reason(construct):
    reason, detail = python_verdict(PY2[construct])
    assert reason == "parse_error:python2" and detail.endswith(f"(python2: {construct})")


def test_python2_exec_of_an_expression_is_python2_too():
    src = 'import sys\nexec compile(open(sys.argv[1]).read(), sys.argv[1], "exec") in {}\n'
    assert python_verdict(src)[0] == "parse_error:python2"


def test_print_chevron_is_valid_python3_syntax():
    assert python_verdict('import sys\nprint >>sys.stderr, "x"\n') is None  # a tuple expression to Python 3


@pytest.mark.parametrize("construct", sorted(NEWER))
def test_newer_grammar_gets_its_own_reason(construct):
    reason, detail = python_verdict(NEWER[construct])
    assert reason == "parse_error:python_newer" and detail.endswith(f"(python_newer: {construct})")


def test_backslash_and_same_quotes_in_fstrings_are_newer():
    assert python_verdict('x = f"{"\\n".join(lines)}"\n')[0] == "parse_error:python_newer"
    assert python_verdict("msg = (f'{' '.join(cmd)!r} failed '\n       f'with {code}')\n")[0] == "parse_error:python_newer"


@pytest.mark.parametrize("src", [
    "def f(:\n    pass\n",  # broken in every dialect
    'def f(x: int) -> int:\n    print "x"\n    return x\n',  # Python 3 annotations + a stray print statement
    'print "a"\nprint(f"{a}")\n',  # an f-string next to a print statement
    'print "a"\ndef g(*args, key=None):\n    pass\n',  # keyword-only parameter
    "type X = int\nprint 'a'\n",  # newer grammar next to Python 2 grammar
    "print 'a'\nx = (1,\n",  # Python 2 but truncated
    "x = 1\x00\n",  # NUL byte
])
def test_broken_or_mixed_code_stays_a_plain_parse_error(src):
    assert python_verdict(src)[0] == "parse_error"


def test_print_function_import_lets_python2_use_print_calls():
    src = "from __future__ import print_function\ntry:\n    pass\nexcept OSError, e:\n    print(e, file=sys.stderr)\n"
    assert python_verdict(src)[0] == "parse_error:python2"


def test_filter_records_the_dialect_reason():
    cfg = FilterConfig(input=["x"])
    doc = {"id": "1", "path": "old.py", "lang": "Python", "content": PY2["print_statement"], "size": 30,
           "repository_name": "", "ext": "py"}
    reason, detail = first_rejection(doc, line_stats(doc["content"]), cfg)
    assert reason == "parse_error:python2" and detail.startswith("line 2: Missing parentheses")


def _read(path: Path) -> dict | None:
    """``path`` as the filter reads it (None for binary, non-UTF-8 or empty files)."""
    return normalize({"content": path.read_bytes(), "path": str(path)}, str(path), 0, Counter())


def test_real_stdlib_modules_stay_accepted():
    packages = ("asyncio", "email", "json", "importlib", "logging", "http", "urllib", "xml", "concurrent", "unittest")
    files = sorted(STDLIB.glob("*.py")) + [p for pkg in packages for p in sorted((STDLIB / pkg).rglob("*.py"))]
    docs = [d for d in map(_read, files) if d is not None]
    assert len(docs) >= 330
    assert [d["path"] for d in docs if parse_error(d, ParseConfig()) is not None] == []


def test_python2_files_shipped_in_the_stdlib_are_python2():
    data = STDLIB / "lib2to3" / "tests" / "data"
    if not data.is_dir():
        pytest.skip(f"{data} not on this image")
    verdicts = {p.name: parse_error(_read(p), ParseConfig()) for p in sorted(data.glob("*.py"))}
    assert {n for n, v in verdicts.items() if v and v[0] == "parse_error:python2"} == {
        "bom.py", "crlf.py", "different_encoding.py", "false_encoding.py", "py2_test_grammar.py"}
    assert all(v is None for n, v in verdicts.items() if n in ("py3_test_grammar.py", "infinite_recursion.py"))


def test_real_python2_tree_is_python2_and_never_newer():
    if not PY2_STDLIB.is_dir():
        pytest.skip(f"no Python 2 tree at {PY2_STDLIB} on this image")
    files = [p for p in sorted((PY2_STDLIB / "lib-tk").glob("*.py")) + sorted(PY2_STDLIB.glob("[a-h]*.py"))]
    verdicts = [v for v in (parse_error(d, ParseConfig()) for d in map(_read, files) if d is not None) if v]
    reasons = [v[0] for v in verdicts]
    assert len(verdicts) >= 50 and "parse_error:python_newer" not in reasons
    assert reasons.count("parse_error:python2") >= 0.95 * len(verdicts)
