"""The dashboard, rendered by a real headless Chromium: the bars stand at the computed rates, the p-value is on
the page, and the screenshot holds each variant's colour where its bars are — a page whose plots did not draw fails.

The tables are synthetic with known counts: two variants (the second with a name that tries to inject
markup) in two languages; the baseline has five extra completions without feedback so it has the most.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image
from scipy import stats as sps

from llmfoundry_lite.cli.feedback_report import main as report_main
from llmfoundry_lite.serve.dashboard import PLOT_BACKGROUND, render_dashboard
from llmfoundry_lite.serve.feedback_stats import PERCENTILES
from tests.serve.chromium import Element, elements, render

REPO = Path(__file__).resolve().parents[2]
BASE, DPO = "base", 'dpo <b>"v2"</b> & co'
COUNTS = {(BASE, "python"): (8, 20), (BASE, "go"): (2, 10), (DPO, "python"): (14, 20), (DPO, "go"): (5, 10)}
"""(accepted, shown) per variant and language: rates 0.4, 0.2, 0.7, 0.5; overall 10/30 against 19/30."""
EXTRA_BASE = 5
T0 = 1_700_000_000.0


def synthetic_tables() -> tuple[pa.Table, pa.Table]:
    """Completions (one choice each, over two hours) and their feedback, with the spec's columns."""
    comp: dict[str, list] = {k: [] for k in ("id", "created", "model", "assignment", "language", "latency_ms", "ttft_ms")}
    fb: dict[str, list] = {"completion_id": [], "choice": [], "event": []}
    plan = [(v, lang, i < acc) for (v, lang), (acc, shown) in COUNTS.items() for i in range(shown)]
    plan += [(BASE, "python", None)] * EXTRA_BASE  # served, never shown
    for i, (variant, lang, accepted) in enumerate(plan):
        cid = f"cmpl-{i:04x}"
        slow = variant == DPO
        comp["id"].append(cid)
        comp["created"].append(T0 + i * 7200 / len(plan))
        comp["model"].append(variant)
        comp["assignment"].append("ab")
        comp["language"].append(lang)
        comp["latency_ms"].append(200.0 + 5 * i + (300.0 if slow else 0.0))
        comp["ttft_ms"].append(20.0 + i % 7 + (30.0 if slow else 0.0))
        if accepted is None:
            continue
        events = ["shown", ("edited" if i % 3 == 0 else "accepted") if accepted else "rejected"]
        for event in events:
            fb["completion_id"].append(cid)
            fb["choice"].append(0)
            fb["event"].append(event)
    n = len(plan)
    completions = pa.table({**{k: comp[k] for k in ("id", "created", "model", "assignment", "language")},
                            "n_choices": pa.array([1] * n, pa.int32()), "latency_ms": comp["latency_ms"],
                            "ttft_ms": comp["ttft_ms"]})
    feedback = pa.table({"completion_id": fb["completion_id"], "choice": pa.array(fb["choice"], pa.int32()),
                         "event": fb["event"], "created": [T0 + 7300.0] * len(fb["event"])})
    return completions, feedback


@pytest.fixture(scope="module")
def page(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("dashboard") / "dashboard.html"
    html = render_dashboard(*synthetic_tables(), title="Feedback <script>x</script>", generated_at=T0 + 7400)
    path.write_text(html, encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def rendered(page: Path) -> tuple[list[Element], np.ndarray]:
    """One Chromium run: the rendered DOM's elements and the screenshot as an (H, W, 3) array."""
    out = render(page, page.parent)
    return elements(out.dom), np.asarray(Image.open(out.screenshot).convert("RGB"))


def select(els: list[Element], chart: str | None = None, tag: str | None = None, cls: str | None = None,
           **data: str) -> list[Element]:
    """Elements by chart id, tag, class and ``data-*`` values (``data_variant="x"``)."""
    return [e for e in els if (chart is None or e.chart == chart) and (tag is None or e.tag == tag)
            and (cls is None or cls in e.attrs.get("class", "").split())
            and all(e.attrs.get(k.replace("_", "-")) == v for k, v in data.items())]


def test_acceptance_bars_stand_at_the_rates(rendered: tuple[list[Element], np.ndarray]) -> None:
    els, _ = rendered
    plot = select(els, tag="rect", id="acceptance-plot")[0]
    plot_h = float(plot.attrs["height"])
    totals = {v: [0, 0] for v in (BASE, DPO)}
    for (variant, _), (acc, shown) in COUNTS.items():
        totals[variant][0] += acc
        totals[variant][1] += shown
    expected = COUNTS | {(v, ""): tuple(t) for v, t in totals.items()}
    bars = select(els, chart="acceptance-chart", tag="rect", cls="bar")
    assert len(bars) == len(expected) == 6
    for bar in bars:
        acc, shown = expected[(bar.attrs["data-variant"], bar.attrs["data-language"])]
        assert (int(bar.attrs["data-accepted"]), int(bar.attrs["data-shown"])) == (acc, shown)
        assert float(bar.attrs["data-rate"]) == pytest.approx(acc / shown, abs=1e-6)
        assert float(bar.attrs["height"]) / plot_h == pytest.approx(acc / shown, abs=1e-3)  # drawn at the rate
    whiskers = select(els, chart="acceptance-chart", tag="path", cls="ci")
    assert len(whiskers) == 6
    for bar, whisker in zip(bars, whiskers, strict=True):
        acc, shown = expected[(bar.attrs["data-variant"], bar.attrs["data-language"])]
        ci = sps.binomtest(acc, shown).proportion_ci(method="wilson")
        assert (float(whisker.attrs["data-low"]), float(whisker.attrs["data-high"])) == pytest.approx(
            (ci.low, ci.high), abs=1e-5)


def test_p_value_is_shown_next_to_the_plot(rendered: tuple[list[Element], np.ndarray]) -> None:
    els, _ = rendered
    # independent route: the 2×2 chi-square without correction is the pooled two-proportion z-test
    _, p_all, _, _ = sps.chi2_contingency([[19, 11], [10, 20]], correction=False)
    assert p_all == pytest.approx(0.0201, abs=1e-4)
    rows = select(els, tag="tr", cls="comparison", data_variant=DPO, data_baseline=BASE)
    assert [r.attrs["data-language"] for r in rows] == ["", "go", "python"]
    overall = rows[0]
    assert float(overall.attrs["data-p-value"]) == pytest.approx(p_all, rel=1e-5)
    assert float(overall.attrs["data-diff"]) == pytest.approx(19 / 30 - 10 / 30)
    cell = select(els, tag="td", cls="p-value")[0]
    assert cell.text == f"p = {p_all:.3f}" and "significant" in cell.attrs["class"]  # 0.020 < 0.05
    _, p_go, _, _ = sps.chi2_contingency([[5, 5], [2, 8]], correction=False)
    assert float(rows[1].attrs["data-p-value"]) == pytest.approx(p_go, rel=1e-5)
    # and under each group of the plot itself, in the variant's colour
    notes = select(els, chart="acceptance-chart", tag="text", cls="p-note", data_variant=DPO)
    assert [(n.attrs["data-language"], n.text.split("■ ")[1]) for n in notes] == [
        ("", f"p = {p_all:.3f}"), ("go", f"p = {p_go:.3f}"), ("python", "p = 0.057")]


def test_timing_and_volume_plots(rendered: tuple[list[Element], np.ndarray]) -> None:
    els, _ = rendered
    comp, _ = synthetic_tables()
    for metric in ("ttft_ms", "latency_ms"):
        bars = select(els, chart=f"{metric}-chart", tag="rect", cls="bar")
        assert len(bars) == 2 * len(PERCENTILES)
        for bar in bars:
            values = [x for x, m in zip(comp[metric].to_pylist(), comp["model"].to_pylist(), strict=True)
                      if m == bar.attrs["data-variant"]]
            want = np.percentile(values, int(bar.attrs["data-q"]))
            assert float(bar.attrs["data-value"]) == pytest.approx(want, rel=1e-5)
        per_value = [float(b.attrs["height"]) / float(b.attrs["data-value"]) for b in bars]
        assert max(per_value) == pytest.approx(min(per_value), rel=1e-3)  # heights proportional to the values
    volume = select(els, chart="volume-chart", tag="rect", cls="bar")
    per_variant = {v: sum(int(b.attrs["data-count"]) for b in volume if b.attrs["data-variant"] == v) for v in (BASE, DPO)}
    assert per_variant == {BASE: 30 + EXTRA_BASE, DPO: 30}
    per_count = [float(b.attrs["height"]) / int(b.attrs["data-count"]) for b in volume]
    assert max(per_count) == pytest.approx(min(per_count), rel=1e-3)


def _rgb(hex_colour: str) -> np.ndarray:
    return np.array([int(hex_colour[i:i + 2], 16) for i in (1, 3, 5)], dtype=np.uint8)


def test_screenshot_shows_each_plot_with_its_bars(rendered: tuple[list[Element], np.ndarray]) -> None:
    """Find each plot by its background colour, then count each variant's colour inside it: the pixels
    must match the bars' drawn area (whiskers cover a few), so a plot that did not draw fails."""
    els, img = rendered
    colours = {li.attrs["data-variant"]: li.attrs["data-colour"] for li in select(els, tag="li") if "data-colour" in li.attrs}
    assert set(colours) == {BASE, DPO} and colours[BASE] != colours[DPO]
    for chart, background in PLOT_BACKGROUND.items():
        ys, xs = np.nonzero((img == _rgb(background)).all(axis=-1))
        assert len(ys), f"the {chart} plot is not in the screenshot"
        plot = select(els, tag="rect", id=f"{chart}-plot")[0]
        assert ys.max() - ys.min() + 1 == pytest.approx(float(plot.attrs["height"]), abs=2)
        assert xs.max() - xs.min() + 1 == pytest.approx(float(plot.attrs["width"]), abs=2)
        region = img[ys.min():ys.max() + 1, xs.min():xs.max() + 1]
        for variant, colour in colours.items():
            bars = select(els, chart=f"{chart}-chart", tag="rect", cls="bar", data_variant=variant)
            drawn = sum(float(b.attrs["width"]) * float(b.attrs["height"]) for b in bars)
            pixels = int((region == _rgb(colour)).all(axis=-1).sum())
            assert drawn > 500 and pixels == pytest.approx(drawn, rel=0.1), (chart, variant, pixels, drawn)


def test_user_strings_are_escaped(page: Path, rendered: tuple[list[Element], np.ndarray]) -> None:
    els, _ = rendered
    assert not select(els, tag="b") and not select(els, tag="script")  # the names did not become markup
    assert select(els, tag="h1")[0].text == "Feedback <script>x</script>"
    assert {li.attrs["data-variant"] for li in select(els, tag="li") if "data-variant" in li.attrs} == {BASE, DPO}
    html = page.read_text()
    assert DPO not in html and "dpo &lt;b&gt;&quot;v2&quot;&lt;/b&gt; &amp; co" in html


def test_page_is_self_contained(page: Path) -> None:
    html = page.read_text()
    for needle in ("<script", "<link", "src=", "href=", "url(", "@import", "https://"):
        assert needle not in html, needle
    assert html.count("http://") == html.count('xmlns="http://www.w3.org/2000/svg"')  # a namespace name, not a fetch


def test_empty_tables_say_no_feedback_yet() -> None:
    comp, fb = synthetic_tables()
    for html in (render_dashboard(comp.slice(0, 0), fb.slice(0, 0), title="t", generated_at=T0),
                 render_dashboard(pa.table({}), pa.table({}), title="t", generated_at=T0)):
        assert 'id="no-feedback"' in html and "No feedback yet" in html and "<svg" not in html
    html = render_dashboard(comp, fb.slice(0, 0), title="t", generated_at=T0)  # served, nothing shown yet
    assert "No feedback yet" in html and 'id="volume-chart"' in html and 'id="acceptance-chart"' not in html


def write_export(directory: Path) -> Path:
    comp, fb = synthetic_tables()
    directory.mkdir(parents=True, exist_ok=True)
    pq.write_table(comp, directory / "completions.parquet")
    pq.write_table(fb, directory / "feedback.parquet")
    return directory


def test_cli_writes_the_page_from_a_parquet_export(tmp_path: Path) -> None:
    export = write_export(tmp_path / "export")
    out = tmp_path / "site" / "report.html"
    proc = subprocess.run([sys.executable, "scripts/feedback_report.py", "--input", str(export), "--output", str(out)],
                          cwd=REPO, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[1].split() == [BASE, "(baseline)", "35", "30", "10", "33.3%", "19.2–51.2%"]
    _, p, _, _ = sps.chi2_contingency([[19, 11], [10, 20]], correction=False)
    assert f"{DPO} vs {BASE}: +30.0 pts, z = 2.33, p = {p:.3g}" in lines
    assert lines[-1].startswith(f"wrote {out}")
    html = out.read_text()
    assert html.count('class="bar"') == 6 + 12 + len(select(elements(html), chart="volume-chart", cls="bar"))


def test_cli_user_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        report_main(["--input", str(tmp_path), "--output", str(tmp_path / "r.html")])
    assert exc.value.code == 2 and f"error: no completions.parquet in {tmp_path}" in capsys.readouterr().err
    export = write_export(tmp_path / "export")
    with pytest.raises(SystemExit) as exc:
        report_main(["--input", str(export), "--output", str(tmp_path / "r.html"), "--baseline", "nope"])
    assert exc.value.code == 2 and "baseline 'nope' served no completion; choose from" in capsys.readouterr().err
    report_main(["--input", str(export), "--output", str(tmp_path / "r.html"), "--baseline", DPO])
    assert f"{BASE} vs {DPO}: -30.0 pts" in capsys.readouterr().out


def test_cli_reads_the_store(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``--db``: the same tables through a SQLite store give the same summary as the Parquet export."""
    from llmfoundry_lite.serve.feedback_store import CompletionRecord, FeedbackEvent, FeedbackStore, default_url

    comp, fb = synthetic_tables()
    url = default_url(tmp_path)
    with FeedbackStore(url) as store:
        for row in comp.to_pylist():
            store.record_completion(CompletionRecord(
                id=row["id"], created=row["created"], model=row["model"], assignment="ab", user=None,
                language=row["language"], n_choices=1, prompt_tokens=3, suffix_tokens=0, completion_tokens=5,
                latency_ms=row["latency_ms"], ttft_ms=row["ttft_ms"], finish_reasons=("stop",)))
        for row in fb.to_pylist():
            store.record_feedback(FeedbackEvent(row["completion_id"], row["choice"], row["event"], created=row["created"]))
    report_main(["--db", url, "--output", str(tmp_path / "db.html")])
    from_db = capsys.readouterr().out.splitlines()
    report_main(["--input", str(write_export(tmp_path / "export")), "--output", str(tmp_path / "pq.html")])
    from_export = capsys.readouterr().out.splitlines()
    assert from_db[:-1] == from_export[:-1] and f"{DPO} vs {BASE}: +30.0 pts, z = 2.33, p = 0.0201" in from_db
