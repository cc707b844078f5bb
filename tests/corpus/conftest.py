import zipfile

import pytest


@pytest.fixture
def tiny_tree(tmp_path):
    """A small source tree with one file of every kind the builder must handle."""
    root = tmp_path / "tree"
    (root / "pkg" / "sub").mkdir(parents=True)
    (root / "pkg" / "mod.py").write_text("def f(x):\n    return x + 1\n")
    (root / "pkg" / "sub" / "util.h").write_text("#pragma once\nint add(int a, int b);\n")
    (root / "pkg" / "run").write_text("#!/usr/bin/env bash\necho hi\n")
    (root / "pkg" / "tool").write_text("#!/usr/bin/python3.11 -u\nprint('x')\n")
    (root / "pkg" / "app.js").write_text("const a = 1;\nmodule.exports = a;\n")
    (root / "pkg" / "blob.c").write_bytes(b"int x;\x00\x01\x02")
    (root / "pkg" / "latin1.py").write_bytes("s = 'caf\xe9'\n".encode("latin-1"))
    (root / "pkg" / "empty.py").write_text("   \n\n")
    (root / "pkg" / "big.py").write_text("x = 1\n" * 400)
    (root / "pkg" / "notes.txt").write_text("not code\n")
    (root / "pkg" / "bom.py").write_bytes("\ufeffy = 2\n".encode())
    (root / "pkg" / "link.py").symlink_to(root / "pkg" / "mod.py")
    return root


@pytest.fixture
def tiny_zip(tmp_path):
    path = tmp_path / "src.zip"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("java.base/java/lang/A.java", "class A { int x; }\n")
        zf.writestr("java.base/java/lang/B.java", "class B { }\n")
        zf.writestr("java.base/README", "no language\n")
    return path
