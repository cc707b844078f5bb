import pytest

from llmfoundry_lite.filtering.config import ParseConfig
from llmfoundry_lite.filtering.parse import parse_error, python_error

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


def check(lang: str, path: str, content: str, **cfg) -> str | None:
    return parse_error({"lang": lang, "path": path, "content": content}, ParseConfig(**cfg))


@pytest.mark.parametrize("lang", sorted(VALID))
def test_tree_sitter_languages_accept_valid_and_reject_broken(lang):
    path, good = VALID[lang]
    assert check(lang, path, good) is None
    err = check(lang, path, BROKEN[lang])
    assert err is not None and "syntax error at line" in err


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
