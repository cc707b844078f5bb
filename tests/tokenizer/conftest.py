"""Shared fixtures: the committed test tokenizer and a tiny Stack-format corpus."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

ASSET_TOKENIZER = Path(__file__).resolve().parents[1] / "assets" / "tokenizer"

PY_DOC = '''import os


class Loader:
    """Loads things."""

    def __init__(self, root_dir, max_items=100):
        self.root_dir = root_dir
        self.max_items = max_items

    def load(self, name):
        path = os.path.join(self.root_dir, name)
        with open(path) as fh:
            return fh.read()[: self.max_items]
'''

C_DOC = """#include <stdio.h>

int main(int argc, char **argv) {
\tfor (int i = 0; i < argc; i++) {
\t\tprintf("%d: %s\\n", i, argv[i]);
\t}
\treturn 0;
}
"""


@pytest.fixture(scope="session")
def asset_tokenizer_dir() -> Path:
    return ASSET_TOKENIZER


def write_jsonl_corpus(path: Path, n_docs: int) -> Path:
    """``n_docs`` small Stack-format documents (Python and C variants) in one JSONL file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as fh:
        for i in range(n_docs):
            body = (PY_DOC if i % 2 == 0 else C_DOC).replace("100", str(100 + i)).replace("argc", f"argc{i % 7}")
            lang, ext = ("Python", "py") if i % 2 == 0 else ("C", "c")
            fh.write(json.dumps({"id": f"doc{i}", "content": body, "path": f"src/f{i}.{ext}", "lang": lang}) + "\n")
    return path


@pytest.fixture()
def tiny_corpus(tmp_path: Path) -> Path:
    return write_jsonl_corpus(tmp_path / "corpus" / "docs.jsonl", 60)
