"""JavaScript / TypeScript / Java extraction (tree-sitter): exact pair text, each filter, the pipeline."""

import json
import textwrap

import pytest

from llmfoundry_lite.synth.checks import REASONS, source_drop_reason
from llmfoundry_lite.synth.config import SynthConfig
from llmfoundry_lite.synth.extract_java import extract_java
from llmfoundry_lite.synth.extract_js import extract_javascript, extract_typescript
from llmfoundry_lite.synth.extract_treesitter import clean_doc_comment, code_of_source_prompt, format_source_prompt
from llmfoundry_lite.synth.pipeline import run_synthesis

CFG = SynthConfig(input=["unused"])

JS = '''\
const path = require("path");
const fs = require("node:fs");

/**
 * Join the words of a title in kebab case.
 *
 * @param {string} title the title
 * @returns {string} the slug
 */
function slugify(title) {
  // lower case first
  const words = title.toLowerCase().split(/\\s+/);
  return words.filter(Boolean).join("-");
}

function undocumented(a) {
  const b = a * 2;
  return a + b;
}

/** Read a JSON config file next to this module. */
function readConfig(name) {
  const text = fs.readFileSync(path.join(__dirname, name), "utf8");
  return JSON.parse(text);
}
'''
TS = '''\
import { createHash } from "crypto";

export interface Point {
  x: number;
  y: number;
}

/**
 * Euclidean distance between two points.
 * @param a first point
 * @param b second point
 */
export const distance = (a: Point, b: Point): number => {
  const dx = a.x - b.x, dy = a.y - b.y;
  return Math.sqrt(dx * dx + dy * dy);
};

export class Cache<T> {
  private items = new Map<string, T>();

  /**
   * The cached value of `key`, made once by `make`.
   */
  @logged()
  public lookup(key: string, make: () => T): T {
    let value = this.items.get(key);
    if (value === undefined) {
      value = make();
      this.items.set(key, value);
    }
    return value;
  }
}
'''
JAVA = '''\
package org.example.text;

import java.util.ArrayList;
import java.util.List;

/** Text helpers. */
public final class Words {
    /** No instances. */
    private Words() {}

    /**
     * Splits {@code text} on whitespace.
     *
     * @param text the input
     * @return the non-empty words
     */
    @SuppressWarnings("unused")
    public static List<String> split(String text) {
        List<String> out = new ArrayList<>();
        for (String w : text.split("\\\\s+")) {
            if (!w.isEmpty()) out.add(w);
        }
        return out;
    }

    /** Prints each word. */
    static void print(List<String> words) {
        for (String w : words) {
            System.out.println(w);
        }
    }
}
'''


def test_javascript_pair_text_is_exact_and_undocumented_functions_are_ignored():
    found = extract_javascript(JS)
    assert [(f.qualname, f.lineno, f.class_name) for f in found] == [("slugify", 10, None), ("readConfig", 22, None)]
    fn = found[0]
    assert format_source_prompt(fn) == (
        "Write the body of the following JavaScript function.\n\n"
        "Join the words of a title in kebab case.\n\n"
        "@param {string} title the title\n"
        "@returns {string} the slug\n\n"
        "```javascript\nfunction slugify(title) {\n```\n")
    assert fn.body == ("  // lower case first\n"
                       "  const words = title.toLowerCase().split(/\\s+/);\n"
                       '  return words.filter(Boolean).join("-");\n'
                       "}\n")
    assert code_of_source_prompt(format_source_prompt(fn)) + fn.body == fn.program
    assert fn.program in JS and source_drop_reason(fn, CFG) is None
    assert found[1].used_modules == ("fs", "path") and source_drop_reason(found[1], CFG) == "unsafe_api"


def test_typescript_arrow_function_and_decorated_class_method():
    arrow, method = extract_typescript(TS, "src/geometry.ts")
    assert format_source_prompt(arrow) == (
        "Write the body of the following TypeScript function.\n\n"
        "Euclidean distance between two points.\n@param a first point\n@param b second point\n\n"
        "```typescript\nexport const distance = (a: Point, b: Point): number => {\n```\n")
    assert arrow.body == "  const dx = a.x - b.x, dy = a.y - b.y;\n  return Math.sqrt(dx * dx + dy * dy);\n}\n"
    assert (method.qualname, method.class_name, method.lineno) == ("Cache.lookup", "Cache", 25)
    assert format_source_prompt(method) == (
        "Write the body of the following method of the TypeScript class `Cache`.\n\n"
        "The cached value of `key`, made once by `make`.\n\n"
        "```typescript\npublic lookup(key: string, make: () => T): T {\n```\n")  # the decorator is left out
    assert method.body == ("  let value = this.items.get(key);\n  if (value === undefined) {\n    value = make();\n"
                           "    this.items.set(key, value);\n  }\n  return value;\n}\n")
    assert [source_drop_reason(f, CFG) for f in (arrow, method)] == [None, None]


def test_java_method_pair_text_constructor_skipped_void_is_no_return():
    split, printer = extract_java(JAVA, "Words.java")  # the documented constructor is not a function
    assert format_source_prompt(split) == (
        "Write the body of the following method of the Java class `Words`.\n\n"
        "Splits {@code text} on whitespace.\n\n@param text the input\n@return the non-empty words\n\n"
        "```java\npublic static List<String> split(String text) {\n```\n")  # annotations left out
    assert split.body == ("    List<String> out = new ArrayList<>();\n"
                          '    for (String w : text.split("\\\\s+")) {\n'
                          "        if (!w.isEmpty()) out.add(w);\n    }\n    return out;\n}\n")
    assert split.lineno == 18 and split.used_modules == ("java.util.ArrayList", "java.util.List")
    assert (source_drop_reason(split, CFG), source_drop_reason(printer, CFG)) == (None, "no_return")


def test_tsx_paths_use_the_tsx_grammar():
    src = ("/**\n * A labelled button.\n * @param props its label\n */\n"
           "export function Button(props: { label: string }) {\n"
           "  const text = props.label.trim();\n  return <button className=\"b\">{text}</button>;\n}\n")
    assert source_drop_reason(extract_typescript(src, "ui/Button.tsx")[0], CFG) is None


def test_clean_doc_comment():
    assert clean_doc_comment("/** One line. */") == "One line."
    assert clean_doc_comment("/**\n   * Lead.\n   *\n   *     indented()\n   * @return x\n   */") == \
        "Lead.\n\n    indented()\n@return x"


def _reason(extract, source: str, **cfg) -> str | None:
    [fn] = extract(textwrap.dedent(source))
    return source_drop_reason(fn, SynthConfig(input=["unused"], **cfg))


BODY = "  const y = x * 2;\n  return y + 1;\n}\n"
JS_CASES = {
    "inline_layout": "/** Doc. */\nfunction f(x) { const y = x * 2;\n  return y + 1;\n}\n",
    "expression_body": "/** Double. */\nconst double = (x) => x * 2;\n",
    "no_parameters": "/** Now. */\nfunction now() {\n  const d = new Date();\n  return d.getTime();\n}\n",
    "trivial_body": '/** Later. */\nfunction f(x) {\n  throw new Error("not implemented");\n}\n',
    "no_return": "/** Log. */\nfunction f(x) {\n  const g = () => { return x; };\n  console.log(g());\n"
                 "  return null;\n}\n",
    "too_short": "/** Inc. */\nfunction inc(x) {\n  return x + 1;\n}\n",
    "todo": "/** Scale. */\nfunction f(x) {\n  // TODO: negatives\n" + BODY,
    "unsafe_api": "/** Env. */\nfunction f(x) {\n  const y = process.env[x];\n  return y + 1;\n}\n",
    "does_not_compile": "/** Broken. */\nfunction f(x) {\n  const y = x +* 2;\n  return y + 1;\n}\n",
}


@pytest.mark.parametrize("reason", sorted(JS_CASES))
def test_each_reason_fires_on_its_javascript_example(reason):
    assert _reason(extract_javascript, JS_CASES[reason]) == reason


def test_limit_reasons_and_kept_control():
    src = "/** Scale `x`. */\nfunction f(x) {\n" + BODY
    assert _reason(extract_javascript, src) is None
    assert _reason(extract_javascript, src, max_body_lines=1, min_body_lines=1) == "too_long"
    assert _reason(extract_javascript, src, max_prompt_chars=40) == "prompt_too_long"
    assert _reason(extract_javascript, src, max_response_chars=20) == "response_too_long"
    assert _reason(extract_javascript, "/** One. */\nfunction f(x) {\n  return 1;\n}\n", min_body_lines=1) == \
        "trivial_body"
    assert list(REASONS).index("expression_body") == list(REASONS).index("inline_layout") + 1
    [commented] = extract_javascript("/** D. */\nfunction f(x) { // a note\n" + BODY)
    assert (commented.code, commented.body, commented.inline) == ("function f(x) { // a note\n", BODY, False)


@pytest.mark.parametrize("source, unsafe", [
    ('import { spawn } from "child_process";\n/** Run. */\nfunction f(x) {\n  const p = spawn(x);\n  return p;\n}\n',
     "uses module-level import of child_process"),
    ('/** Get. */\nasync function f(u) {\n  const h = await import("node:https");\n  return h.get(u);\n}\n',
         "imports https"),
    ("/** Eval. */\nfunction f(x) {\n  const g = new Function('a', x);\n  return g(1);\n}\n", "uses Function("),
    ('/** Safe. */\nfunction f(x) {\n  const s = "process.exit() eval(";\n  return x.eval(s);\n}\n', None),
])
def test_unsafe_javascript(source, unsafe):
    [fn] = extract_javascript(source)
    assert fn.unsafe == unsafe


JAVA_UNSAFE = [
    ("import java.io.File;", "return new File(name).length();", "uses import of java.io.File"),
    ("import java.net.*;", "return new URL(name).getHost().length();", "uses java.net.URL (wildcard import)"),
    ("", "return java.nio.file.Files.size(java.nio.file.Path.of(name));", "uses java.nio.file"),
    ("", "Runtime.getRuntime().gc();\n        return 1 + name.length();", "uses Runtime"),
    ("", "if (name.isEmpty()) System.exit(1);\n        return name.length();", "uses System.exit"),
    ("", "Object o = Class.forName(name);\n        return o.hashCode();", "uses Class.forName"),
    ("import java.util.List;", '// System.exit(1)\n        String s = "Runtime";\n        return s.length();', None),
]


@pytest.mark.parametrize("imports, body, unsafe", JAVA_UNSAFE)
def test_unsafe_java(imports, body, unsafe):
    src = f"{imports}\nclass A {{\n    /** Size. */\n    long size(String name) throws Exception {{\n        {body}\n    }}\n}}\n"
    [fn] = extract_java(src)
    assert fn.unsafe == unsafe
    assert source_drop_reason(fn, SynthConfig(input=["unused"], min_body_lines=1)) == ("unsafe_api" if unsafe else None)


def test_java_reasons():
    def one(member: str) -> str | None:
        [fn] = extract_java("class A {\n    " + member + "\n}\n")
        return source_drop_reason(fn, CFG)

    assert one("/** N. */\n    int n() {\n        int a = 1;\n        return a + 1;\n    }") == "no_parameters"
    assert one("/** T. */\n    int t(int a) {\n        throw new UnsupportedOperationException();\n    }") == \
        "trivial_body"
    assert one("/** E. */\n    int e(int a) {\n        int b = a +* 2;\n        return b;\n    }") == \
        "does_not_compile"
    assert extract_java("interface I {\n    /** Abstract. */\n    int f(int a);\n}\n") == []


def _doc(i: str, path: str, content: str) -> dict:
    return {"id": i, "repository_name": f"octo/{i}", "path": path, "content": content}


@pytest.mark.parametrize("keep_untested", [True, False])
def test_pipeline_with_python_javascript_java_and_ruby(tmp_path, keep_untested):
    py = 'def scale(values, factor):\n    """Multiply every value."""\n    out = [v * factor for v in values]\n' \
         '    return out\n'
    docs = [_doc("p", "m.py", py), _doc("j", "s.js", JS), _doc("w", "Words.java", JAVA),
            _doc("r", "a.rb", "def f(x)\n  x\nend\n")]
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "d.jsonl").write_text("".join(json.dumps(d) + "\n" for d in docs))
    cfg = SynthConfig(input=[str(tmp_path / "in")], output=str(tmp_path / "out"), report=False,
                      keep_untested=keep_untested, heldout_fraction=0.0)
    stats = run_synthesis(cfg)
    assert json.loads((tmp_path / "out" / "stats.json").read_text()) == stats
    assert (stats["documents"], stats["documents_parsed"]) == (4, 3)
    assert stats["documents_skipped_by_reason"] == {"unsupported_language": 1}
    assert stats["seen"] == 1 + 2 + 2
    assert stats["kept"] + sum(stats["dropped_by_reason"].values()) == stats["seen"]
    assert stats["verify"]["untested_by_reason"]["language_not_runnable"] == 2
    assert stats["verify"]["untested_by_reason"]["no_tests"] == 1
    rows = [json.loads(line) for line in (tmp_path / "out" / "instruct.jsonl").read_text().splitlines()]
    expected = {"unsafe_api": 1, "no_return": 1} | ({} if keep_untested else {"untested": 3})
    assert {k: v for k, v in stats["dropped_by_reason"].items() if v} == expected
    if keep_untested:
        assert [(r["source_id"], r["language"], r["origin"]) for r in rows] == [
            ("p#scale:1", "Python", "untested"), ("j#slugify:10", "JavaScript", "untested"),
            ("w#Words.split:18", "Java", "untested")]
        assert rows[1]["prompt"].startswith("Write the body of the following JavaScript function.")
    else:
        assert rows == []


def test_languages_option_selects_what_is_read(tmp_path):
    docs = [_doc("j", "s.js", JS), _doc("w", "Words.java", JAVA), _doc("r", "a.rb", "def f(x)\n  x\nend\n")]
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "d.jsonl").write_text("".join(json.dumps(d) + "\n" for d in docs))
    stats = run_synthesis(SynthConfig(input=[str(tmp_path / "in")], output=str(tmp_path / "out"), report=False,
                                      languages=["Java"]))
    assert stats["documents_skipped_by_reason"] == {"language_not_selected": 1, "unsupported_language": 1}
    assert stats["seen"] == 2 and stats["documents_parsed"] == 1
    with pytest.raises(ValueError, match=r"languages=\['Ruby'\]: choose from"):
        SynthConfig(input=["x"], languages=["Ruby"])
