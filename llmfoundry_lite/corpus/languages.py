"""Language detection by file name, extension and shebang, with The Stack's names.

The Stack labels files by extension (``lang`` column values such as ``Python``,
``C++``, ``JavaScript``); C headers (``.h``) count as ``C`` there and here.
Extension-less executables are classified by their ``#!`` line.
"""

from __future__ import annotations

import re
from pathlib import PurePath

EXTENSIONS: dict[str, str] = {
    ".py": "Python", ".pyi": "Python", ".pyw": "Python",
    ".pyx": "Cython", ".pxd": "Cython", ".pxi": "Cython",
    ".c": "C", ".h": "C",
    ".cc": "C++", ".cpp": "C++", ".cxx": "C++", ".c++": "C++",
    ".hh": "C++", ".hpp": "C++", ".hxx": "C++", ".h++": "C++", ".inl": "C++", ".tcc": "C++",
    ".cu": "Cuda", ".cuh": "Cuda",
    ".js": "JavaScript", ".mjs": "JavaScript", ".cjs": "JavaScript", ".jsx": "JavaScript",
    ".ts": "TypeScript", ".mts": "TypeScript", ".cts": "TypeScript", ".tsx": "TypeScript",
    ".java": "Java", ".kt": "Kotlin", ".scala": "Scala", ".groovy": "Groovy",
    ".go": "Go", ".rs": "Rust", ".rb": "Ruby", ".php": "PHP", ".lua": "Lua",
    ".pl": "Perl", ".pm": "Perl", ".t": "Perl",
    ".sh": "Shell", ".bash": "Shell", ".zsh": "Shell", ".ksh": "Shell",
    ".ps1": "PowerShell", ".bat": "Batchfile", ".cmd": "Batchfile",
    ".tcl": "Tcl", ".tk": "Tcl", ".r": "R", ".jl": "Julia", ".swift": "Swift", ".m": "Objective-C",
    ".cs": "C#", ".fs": "F#", ".hs": "Haskell", ".ml": "OCaml", ".mli": "OCaml", ".erl": "Erlang",
    ".ex": "Elixir", ".exs": "Elixir", ".clj": "Clojure", ".el": "Emacs Lisp", ".scm": "Scheme",
    ".lisp": "Common Lisp", ".f": "FORTRAN", ".f90": "FORTRAN", ".f95": "FORTRAN",
    ".s": "Assembly", ".asm": "Assembly", ".S": "Assembly",
    ".sql": "SQL", ".cmake": "CMake", ".mk": "Makefile", ".mak": "Makefile",
    ".html": "HTML", ".htm": "HTML", ".css": "CSS", ".scss": "SCSS", ".less": "Less",
    ".vue": "Vue", ".svelte": "Svelte",
    ".json": "JSON", ".yaml": "YAML", ".yml": "YAML", ".toml": "TOML", ".xml": "XML",
    ".ini": "INI", ".cfg": "INI",
    ".md": "Markdown", ".rst": "reStructuredText", ".tex": "TeX",
    ".proto": "Protocol Buffer", ".thrift": "Thrift",
    ".y": "Yacc", ".yy": "Yacc", ".l": "Lex", ".ll": "Lex",
    ".vim": "Vim script", ".awk": "Awk", ".sed": "sed",
}

FILENAMES: dict[str, str] = {
    "Makefile": "Makefile", "makefile": "Makefile", "GNUmakefile": "Makefile",
    "CMakeLists.txt": "CMake", "Dockerfile": "Dockerfile",
    "Rakefile": "Ruby", "Gemfile": "Ruby", "SConstruct": "Python", "SConscript": "Python",
    "BUILD": "Starlark", "WORKSPACE": "Starlark",
}

# Interpreter name (basename of the #! program, or the argument of /usr/bin/env).
INTERPRETERS: dict[str, str] = {
    "python": "Python", "sh": "Shell", "bash": "Shell", "dash": "Shell", "zsh": "Shell",
    "ksh": "Shell", "perl": "Perl", "node": "JavaScript", "nodejs": "JavaScript",
    "ruby": "Ruby", "php": "PHP", "lua": "Lua", "tclsh": "Tcl", "wish": "Tcl",
    "awk": "Awk", "gawk": "Awk", "mawk": "Awk", "sed": "sed", "Rscript": "R",
}

_VERSION_SUFFIX = re.compile(r"[\d.]+$")


def language_from_shebang(first_line: str) -> str | None:
    """Language of a script from its ``#!`` line, or None if there is none we know."""
    if not first_line.startswith("#!"):
        return None
    words = first_line[2:].strip().split()
    if not words:
        return None
    prog = PurePath(words[0]).name
    if prog == "env":
        args = [w for w in words[1:] if not w.startswith("-") and "=" not in w]
        if not args:
            return None
        prog = PurePath(args[0]).name
    return INTERPRETERS.get(prog) or INTERPRETERS.get(_VERSION_SUFFIX.sub("", prog))


def language_from_path(path: str) -> str | None:
    """Language from a file's name or extension alone (no I/O), or None."""
    p = PurePath(path)
    if p.name in FILENAMES:
        return FILENAMES[p.name]
    suffix = p.suffix
    return EXTENSIONS.get(suffix) or EXTENSIONS.get(suffix.lower())


def extension_of(path: str) -> str:
    """The Stack's ``ext`` column: the extension without its dot, '' when none."""
    return PurePath(path).suffix.lstrip(".")
