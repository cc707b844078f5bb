import pytest

from llmfoundry_lite.corpus.languages import extension_of, language_from_path, language_from_shebang


@pytest.mark.parametrize(
    "path, lang",
    [("a/b.py", "Python"), ("x.h", "C"), ("x.hpp", "C++"), ("x.CPP", "C++"), ("m.mjs", "JavaScript"),
     ("t.d.ts", "TypeScript"), ("Makefile", "Makefile"), ("CMakeLists.txt", "CMake"), ("x.S", "Assembly"),
     ("notes.txt", None), ("noext", None)],
)
def test_language_from_path(path, lang):
    assert language_from_path(path) == lang


@pytest.mark.parametrize(
    "line, lang",
    [("#!/bin/sh", "Shell"), ("#!/usr/bin/env python3", "Python"), ("#!/usr/bin/python3.11 -u", "Python"),
     ("#!/usr/bin/env -S node --harmony", "JavaScript"), ("#! /usr/bin/perl -w", "Perl"),
     ("#!/usr/bin/env FOO=1 ruby", "Ruby"), ("#!/usr/bin/env", None), ("# comment", None), ("#!/opt/x/unknown", None)],
)
def test_language_from_shebang(line, lang):
    assert language_from_shebang(line) == lang


def test_extension_of():
    assert extension_of("a/b.tar.py") == "py"
    assert extension_of("Makefile") == ""
