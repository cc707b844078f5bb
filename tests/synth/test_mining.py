"""Test mining and the testability decision, on small source strings: nothing here runs a sandbox."""

import ast
import doctest
import textwrap

from llmfoundry_lite.synth.config import UNSAFE_MODULES
from llmfoundry_lite.synth.extract import extract_functions
from llmfoundry_lite.synth.mining import ModuleAsserts, assert_tests, doctest_text, mine_tests
from llmfoundry_lite.synth.verify import build_program, free_names, untestable

UNSAFE = frozenset(UNSAFE_MODULES)
MODULE = '''\
import math

LIMIT = 10


def hyp(a, b):
    """Hypotenuse.

    >>> hyp(3, 4)
    5.0
    >>> for x in (1,):
    ...     print(x)
    1
    """
    s = a * a + b * b
    return math.sqrt(s)


def capped(x):
    """At most LIMIT."""
    y = x + 0
    return min(y, LIMIT)


class Box:
    def area(self, k):
        """Area.

        >>> Box().area(2)
        4
        """
        k2 = k * k
        return k2


assert hyp(6, 8) == 10.0
assert abs(hyp(1, 1) - 1.4142) < 0.001, "close"
assert hyp(6, 8) == 10.0


def test_hyp():
    assert hyp(5, 12) == 13.0
    side = 3
    assert hyp(side, 4) == 5.0
    assert math.isclose(hyp(1, 0), 1.0)


def helper_not_a_test():
    assert hyp(8, 15) == 17.0
'''


def _functions():
    tree = ast.parse(MODULE)
    return {f.qualname: f for f in extract_functions(MODULE, tree)}, ModuleAsserts.of(tree)


def test_doctest_and_literal_asserts_are_mined_conservatively():
    fns, tree = _functions()
    tests, discarded = mine_tests(fns["hyp"], tree)
    assert [t.kind for t in tests] == ["doctest", "assert", "assert", "assert"]
    assert [t.source for t in tests[1:]] == ["assert hyp(6, 8) == 10.0\n",  # the repeated assert once
                                             "assert abs(hyp(1, 1) - 1.4142) < 0.001, 'close'\n",
                                             "assert hyp(5, 12) == 13.0\n"]
    # ``hyp(side, 4)`` (a name) and ``math.isclose`` (an attribute call) are not literal; helper_not_a_test is no test_*
    assert discarded == ("assert_not_literal", "assert_not_literal")
    assert tests[0].code == "hyp(3, 4)\nfor x in (1,):\n    print(x)\n"
    assert "doctest.DocTestRunner().run" in tests[0].source


def test_doctest_text_round_trips_through_the_parser():
    doc = textwrap.dedent('''\
        >>> print("a\\n")  # doctest: +NORMALIZE_WHITESPACE
        a
        <BLANKLINE>
        >>> int("x")
        Traceback (most recent call last):
          ...
        ValueError: invalid literal
        ''')
    examples = doctest.DocTestParser().get_examples(doc)
    again = doctest.DocTestParser().get_examples(doctest_text(examples))
    assert [(e.source, e.want, e.exc_msg, e.options) for e in again] == \
        [(e.source, e.want, e.exc_msg, e.options) for e in examples]


def test_broken_doctests_are_counted_not_used():
    src = 'def f(x):\n    """Doc.\n\n    >>>f(1)\n    2\n    """\n    y = x\n    return y + 1\n'
    fn = extract_functions(src)[0]
    assert mine_tests(fn, ModuleAsserts.of(ast.parse(src))) == ((), ("doctest_unparsable",))
    src = 'def g(x):\n    """Doc.\n\n    >>> g(1 +)\n    2\n    """\n    y = x\n    return y + 1\n'
    fn = extract_functions(src)[0]
    assert mine_tests(fn, ModuleAsserts.of(ast.parse(src))) == ((), ("doctest_syntax_error",))
    # examples that never call the function (here: one skipped, one about something else) check nothing about it
    src = 'def h(x):\n    """Doc.\n\n    >>> h(1)  # doctest: +SKIP\n    2\n    >>> 1 + 1\n    2\n    """\n    y = x\n    return y + 1\n'
    fn = extract_functions(src)[0]
    assert mine_tests(fn, ModuleAsserts.of(ast.parse(src))) == ((), ("doctest_no_call",))


def test_methods_and_shadowed_names_get_no_asserts():
    fns, tree = _functions()
    assert assert_tests(fns["Box.area"], tree) == ([], 0)
    twice = "def f(x):\n    '''D.'''\n    return x\n\n\ndef f(x):\n    '''D.'''\n    return -x\n\n\nassert f(1) == -1\n"
    fn = extract_functions(twice)[1]
    assert assert_tests(fn, ModuleAsserts.of(ast.parse(twice))) == ([], 0)


def test_untestable_reasons_in_order():
    fns, tree = _functions()
    hyp_tests, _ = mine_tests(fns["hyp"], tree)
    assert untestable(fns["hyp"], hyp_tests, UNSAFE) is None
    assert untestable(fns["capped"], (), UNSAFE) == "no_tests"
    assert untestable(fns["Box.area"], mine_tests(fns["Box.area"], tree)[0], UNSAFE) == "method"
    cases = {
        "import numpy as np\n\n\ndef f(x):\n    '''D.\n\n    >>> f(1)\n    1\n    '''\n    y = np.abs(x)\n    return y\n":
            "non_stdlib_import",
        "def f(x):\n    '''D.\n\n    >>> f(1)\n    1\n    '''\n    from .util import g\n    return g(x)\n":
            "non_stdlib_import",
        "def f(x):\n    '''D.\n\n    >>> import os\n    >>> f(os.getpid())\n    1\n    '''\n    y = x\n    return 1\n":
            "unsafe_import",
        "import functools\n\n\n@functools.cache\ndef f(x):\n    '''D.\n\n    >>> f(1)\n    1\n    '''\n    y = x\n    return y\n":
            "decorated",
        "def f(x):\n    '''D.\n\n    >>> from __future__ import division\n    >>> f(1)\n    1\n    '''\n    y = x\n    return y\n":
            "tests_do_not_compile",
        "def f(x):\n    '''D.\n\n    >>> f(1)\n    11\n    '''\n    y = x + OFFSET\n    return y\n":
            "free_names",
    }
    for src, reason in cases.items():
        fn = extract_functions(src)[0]
        assert untestable(fn, mine_tests(fn, ModuleAsserts.of(ast.parse(src)))[0], UNSAFE) == reason, src


def test_free_names_sees_module_names_but_not_annotations_or_builtins():
    program = build_program("def f(x: Widget) -> list:\n    return sorted(helper(x)) + [f]\n", ["assert f(1)\n"])
    assert program.startswith("from __future__ import annotations\n")
    assert free_names(program) == {"helper"}
    assert free_names("def g():\n    return help\n") == {"help"}  # site.py's help() is absent under python -S
