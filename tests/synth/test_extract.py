"""Extraction text and the per-function filters, each on a small source string."""

import textwrap

import pytest

from llmfoundry_lite.synth.checks import REASONS, compiles, drop_reason
from llmfoundry_lite.synth.config import SynthConfig
from llmfoundry_lite.synth.extract import code_of_prompt, extract_functions, format_prompt

CFG = SynthConfig(input=["unused"])

MODULE = '''\
"""A module."""
import re
from typing import Dict, List as L, Optional
import json

class Outer:
    class Inner:
        @staticmethod
        def split(text: str,
                  sep: Optional[str] = None) -> L[str]:  # the header's own comment
            # a comment before the docstring
            """Split ``text``.

    Continuation at a shallower indent.
            """

            # how: a regular expression
            parts = re.split(sep or r"\\s+", text)
            return [p for p in parts if p]

    def undocumented(self, x):
        return x

def top(a, b):
    """Top level."""
    def helper(y):
        """Nested: part of top's body, not a pair of its own."""
        return y
    return helper(a) + b

if True:
    async def fetch(n):
        \'\'\'In a block.\'\'\'
        m = n * 2
        return m
'''


def _one(source: str):
    [fn] = extract_functions(textwrap.dedent(source))
    return fn


def test_finds_module_level_functions_methods_and_block_functions_only():
    found = [(f.qualname, f.class_name, f.lineno) for f in extract_functions(MODULE)]
    assert found == [("Outer.Inner.split", "Outer.Inner", 9), ("top", None, 24), ("fetch", None, 32)]


def test_code_and_response_text_are_exact():
    fn = extract_functions(MODULE)[0]
    assert fn.code == (
        "import re\n"
        "from typing import List as L, Optional\n"
        "\n\n"
        "def split(text: str,\n"
        "          sep: Optional[str] = None) -> L[str]:  # the header's own comment\n"
        '    """Split ``text``.\n'
        "\n"
        "    Continuation at a shallower indent.\n"  # shallower than the def: left as it is
        '    """\n')
    assert fn.body == ("    # how: a regular expression\n"
                       '    parts = re.split(sep or r"\\s+", text)\n'
                       "    return [p for p in parts if p]\n")
    assert fn.used_modules == ("re", "typing")
    assert fn.docstring.startswith("Split ``text``.") and not fn.inline


def test_prompt_format_and_round_trip_compile():
    fn = extract_functions(MODULE)[0]
    prompt = format_prompt(fn)
    assert prompt == ("Write the body of the following method of the Python class `Outer.Inner`.\n\n```python\n"
                      + fn.code + "```\n")
    assert code_of_prompt(prompt) == fn.code
    for f in extract_functions(MODULE):
        assert code_of_prompt(format_prompt(f)) + f.body == f.program
        compile(f.program, "<test>", "exec")
    top = extract_functions(MODULE)[1]
    assert format_prompt(top).startswith("Write the body of the following Python function.\n\n```python\ndef top")
    assert top.body.startswith("    def helper(y):\n")


def test_fence_outgrows_backticks_in_the_docstring():
    fn = _one('''
        def show(x):
            """Render ``x``, e.g.

            ```python
            show(1)
            ```
            """
            text = str(x)
            return text
    ''')
    prompt = format_prompt(fn)
    assert "\n\n````python\n" in prompt and prompt.endswith("````\n")
    assert code_of_prompt(prompt) == fn.code


def test_crlf_and_tab_indented_methods():
    source = 'class A:\r\n\tdef m(self, x):\r\n\t\t"""Double."""\r\n\t\ty = x * 2\r\n\t\treturn y\r\n'
    [fn] = extract_functions(source)
    assert fn.code == 'def m(self, x):\n\t"""Double."""\n' and fn.body == "\ty = x * 2\n\treturn y\n"
    assert drop_reason(fn, CFG) is None


def test_inline_docstring_layouts():
    assert _one('def f(x): """Doc."""\n').inline
    assert _one('def f(x):\n    """Doc."""; y = x\n    return y\n').inline
    assert drop_reason(_one('def f(x):\n    """Doc."""; y = x\n    return y\n'), CFG) == "inline_layout"


KEPT = '''
def total(xs):
    """Sum of xs."""
    s = 0
    for x in xs:
        s += x
    return s
'''

# (source, expected reason or None for kept)
CASES = [
    (KEPT, None),
    ("def f():\n    '''d'''\n    x = g()\n    return x\n", "no_parameters"),
    ("class A:\n    def f(self):\n        '''d'''\n        x = self.g()\n        return x\n", "no_parameters"),
    ("class A:\n    @classmethod\n    def f(cls, y):\n        '''d'''\n        x = cls.g(y)\n        return x\n", None),
    ("def f(*args):\n    '''d'''\n    x = len(args)\n    return x\n", None),
    ("def f(x):\n    '''d'''\n    pass\n", "trivial_body"),
    ("def f(x):\n    '''d'''\n    ...\n", "trivial_body"),
    ("def f(x):\n    '''d'''\n", "trivial_body"),
    ("def f(x):\n    '''d'''\n    raise NotImplementedError('later')\n", "trivial_body"),
    ("def f(x):\n    '''d'''\n    return -1\n", "trivial_body"),
    ("def f(x):\n    '''d'''\n    return {'a': (1, 2)}\n", "trivial_body"),
    ("def f(x):\n    '''d'''\n    print(x)\n    x.append(1)\n", "no_return"),
    ("def f(x):\n    '''d'''\n    print(x)\n    return None\n", "no_return"),
    ("def f(x):\n    '''d'''\n    def g():\n        return x\n    print(g)\n", "no_return"),
    ("def f(x):\n    '''d'''\n    yield x\n    yield x + 1\n", "no_return"),
    ("def f(x):\n    '''d'''\n    return x + 1\n", "too_short"),
    ("def f(x):\n    '''d'''\n    # only a comment and a blank\n\n    return x + 1\n", "too_short"),
    ("def f(x):\n    '''d'''\n" + "    x += 1\n" * 60 + "    return x\n", "too_long"),
    ("def f(x):\n    '''d'''\n" + "    x += 1\n" * 59 + "    return x\n", None),
    ("def f(x):\n    '''TODO: document'''\n    y = x\n    return y\n", "todo"),
    ("def f(x):\n    '''d'''\n    y = x  # FIXME\n    return y\n", "todo"),
    ("import os\n\ndef f(x):\n    '''d'''\n    y = os.path.join(x, 'a')\n    return y\n", "unsafe_api"),
    ("from shutil import rmtree as rm\n\ndef f(x):\n    '''d'''\n    rm(x)\n    return x\n", "unsafe_api"),
    ("import os\n\ndef f(x):\n    '''d: os unused here'''\n    y = x * 2\n    return y\n", None),
    ("def f(x):\n    '''d'''\n    import subprocess\n    return subprocess.run(x)\n", "unsafe_api"),
    ("def f(x):\n    '''d'''\n    y = eval(x)\n    return y\n", "unsafe_api"),
    ("def f(p):\n    '''d'''\n    with open(p, 'w') as fh:\n        fh.write('x')\n    return p\n", "unsafe_api"),
    ("def f(p, m):\n    '''d'''\n    fh = open(p, mode=m)\n    return fh\n", "unsafe_api"),
    ("def f(p):\n    '''d'''\n    with open(p) as fh:\n        data = fh.read()\n    return data\n", None),
    ("def f(p):\n    '''d'''\n    p.write_text('x')\n    return p\n", "unsafe_api"),
    ("def f(a):\n    '''d'''\n    nonlocal total\n    total = a\n    return total\n", "does_not_compile"),
]


@pytest.mark.parametrize(("source", "reason"), CASES, ids=[f"{i}-{r}" for i, (_, r) in enumerate(CASES)])
def test_filter(source, reason):
    assert drop_reason(_one(source), CFG) == reason


def test_every_reason_has_a_case_and_a_description():
    covered = {r for _, r in CASES if r} | {"inline_layout", "prompt_too_long", "response_too_long"}
    covered |= {"expression_body"}  # JavaScript / TypeScript only: tests/synth/test_extract_treesitter.py
    assert covered == set(REASONS)


def test_text_length_limits():
    fn = _one(KEPT)
    assert drop_reason(fn, SynthConfig(input=["x"], max_prompt_chars=len(format_prompt(fn)) - 1)) == "prompt_too_long"
    assert drop_reason(fn, SynthConfig(input=["x"], max_prompt_chars=len(format_prompt(fn)))) is None
    assert drop_reason(fn, SynthConfig(input=["x"], max_response_chars=len(fn.body) - 1)) == "response_too_long"


def test_unsafe_lists_are_configurable():
    source = "import os\n\ndef f(x):\n    '''d'''\n    y = os.path.join(x, 'a')\n    return y\n"
    relaxed = SynthConfig(input=["x"], unsafe_modules=["subprocess"])
    assert drop_reason(_one(source), relaxed) is None


def test_compiles_rejects_symtable_errors_that_parse_accepts():
    assert compiles("def f(x):\n    return x\n")
    assert not compiles("def f(x):\n    nonlocal y\n    return x\n")
    assert not compiles("def f(x):\n  return x\n    y = 1\n")
