"""The language a completion is counted under: the client's label, a file name, or a guess."""

from __future__ import annotations

import pytest

from llmfoundry_lite.serve.language import UNKNOWN, guess, normalise


@pytest.mark.parametrize(("label", "expected"), [("Python", "python"), ("c++", "c++"), ("src/lib.rs", "rust"),
                                                 ("App.JAVA", "java"), ("klingon", UNKNOWN), ("", UNKNOWN)])
def test_a_client_label_or_file_name_decides(label, expected):
    assert normalise(label) == expected


@pytest.mark.parametrize(("prompt", "expected"), [
    ("def add(a, b):\n    ", "python"),
    ("#!/usr/bin/env bash\nset -e\n", "shell"),
    ("#include <vector>\nint main() {\n", "c++"),
    ("#include <stdio.h>\nint main(void) {\n", "c"),
    ("public class Main {\n    public static void main(String[] a) {\n", "java"),
    ("package main\n\nfunc add(a int, b int) int {\n", "go"),
    ("fn add(a: i32, b: i32) -> i32 {\n", "rust"),
    ("const fs = require('fs');\n", "javascript"),
    ("x = [", UNKNOWN),
    ("Lorem ipsum dolor sit amet", UNKNOWN),
])  # fmt: skip
def test_the_guess_needs_an_unmistakable_construct(prompt, expected):
    assert guess(prompt) == expected


def test_the_suffix_counts_too():
    assert guess("    return x\n", "\n\nif __name__ == \"__main__\":\n    main()\n") == "python"
