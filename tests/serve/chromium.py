"""A real headless Chromium (Debian's ``chromium`` package) for the dashboard test.

One run loads a page and gives both the DOM after rendering (``--dump-dom``) and a screenshot, so a
test pays Chromium's start-up once. The flags keep it off the network and away from the user's
profile: a fresh ``--user-data-dir`` per run, no sync, no component updates, no background requests.
Root in a container has no user namespace for Chromium's sandbox, hence ``--no-sandbox`` there.
A missing browser fails the test with the fix, never skips it: the screenshot test is part of ``make test``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path

import pytest

FLAGS = ("--headless", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--hide-scrollbars", "--force-device-scale-factor=1")
"""Every run's flags (plus ``--no-sandbox`` as root, the profile, the window size and the outputs)."""
WINDOW = (1200, 1600)
"""The screenshot's size in CSS pixels (= image pixels at scale factor 1)."""
VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}


def chromium_binary() -> str:
    """Path of the chromium executable; fails the calling test, naming the fix, when there is none."""
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        pytest.fail("chromium is not installed; run `make system-deps` (installs Debian's chromium package)",
                    pytrace=False)
    return path


@dataclass(frozen=True)
class Rendered:
    """What Chromium made of a page."""

    dom: str
    """The document after rendering, as ``--dump-dom`` serialises it."""
    screenshot: Path
    """A ``WINDOW``-sized PNG of the top of the page."""


def render(page: Path, out_dir: Path, timeout_s: float = 120.0) -> Rendered:
    """Load ``page`` (a local HTML file) once: its rendered DOM and a screenshot under ``out_dir``."""
    png = out_dir / f"{page.stem}.png"
    with tempfile.TemporaryDirectory(prefix="chromium-profile-") as profile:
        cmd = [chromium_binary(), *FLAGS, f"--user-data-dir={profile}", f"--window-size={WINDOW[0]},{WINDOW[1]}",
               f"--screenshot={png}", "--dump-dom", page.resolve().as_uri()]
        if os.geteuid() == 0:
            cmd.insert(1, "--no-sandbox")
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s)
    if proc.returncode != 0 or not png.is_file() or "<html" not in proc.stdout:
        raise RuntimeError(f"chromium exited {proc.returncode} without a DOM and a screenshot; stderr:\n{proc.stderr[-3000:]}")
    return Rendered(proc.stdout, png)


@dataclass
class Element:
    """One element of a parsed page: its tag, attributes, text and the id of the SVG chart holding it."""

    tag: str
    attrs: dict[str, str]
    chart: str | None
    text: str = ""


class _Collector(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.elements: list[Element] = []
        self._svgs: list[str | None] = []
        self._open: list[Element] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        el = Element(tag, {k: v or "" for k, v in attrs}, self._svgs[-1] if self._svgs else None)
        self.elements.append(el)
        if tag == "svg":
            self._svgs.append(el.attrs.get("id"))
        if tag not in VOID:
            self._open.append(el)

    def handle_endtag(self, tag: str) -> None:
        if tag == "svg" and self._svgs:
            self._svgs.pop()
        for i in range(len(self._open) - 1, -1, -1):
            if self._open[i].tag == tag:
                del self._open[i:]
                break

    def handle_data(self, data: str) -> None:
        for el in self._open:  # text belongs to every enclosing element, as textContent does
            el.text += data


def elements(html: str) -> list[Element]:
    """Every element of ``html`` in document order (attribute values and text unescaped)."""
    collector = _Collector()
    collector.feed(html)
    collector.close()
    return collector.elements
