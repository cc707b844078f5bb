"""A source's ``layout`` reaches the reader: a repository with table fixtures is source unless it says table."""

import pyarrow.parquet as pq
import pytest

from llmfoundry_lite.filtering.pipeline import run_filter
from tests.corpus.test_input_layout import repo  # noqa: F401 (fixture: a repository with table fixtures)


# seen counts the fixtures a source tree passes over (skipped: unknown_language)
@pytest.mark.parametrize(("layout", "seen"), [("auto", 4), ("source", 4), ("table", 2)])
def test_source_layout_decides_how_its_directories_are_read(filter_cfg, repo, tmp_path, layout, seen):  # noqa: F811
    cfg = filter_cfg(f"sources.repo.layout={layout}", input=[], sources={"repo": {"input": [str(repo)]}},
                     output=str(tmp_path / layout))
    stats = run_filter(cfg, progress=False)
    assert stats["sources"]["repo"]["seen"] == seen
    paths = sorted(r["path"] for p in (tmp_path / layout / "kept").glob("*.parquet") for r in pq.read_table(p).to_pylist())
    assert paths == (["x.py", "y.py"] if layout == "table" else ["pkg/app.py", "pkg/util.py"])


def test_unknown_layout_is_refused_naming_the_source(filter_cfg, repo):  # noqa: F811
    with pytest.raises(ValueError, match=r"sources.repo.layout: unknown layout 'tables'; choose from"):
        filter_cfg("sources.repo.layout=tables", input=[], sources={"repo": {"input": [str(repo)]}})
