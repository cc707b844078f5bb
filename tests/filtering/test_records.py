"""The JSONL extra columns' kinds: inferred row by row, merged over the units of one file."""

import random

from llmfoundry_lite.filtering.records import merge_kind_maps, merge_kinds


def test_kinds_merged_over_units_are_the_kinds_of_the_file_read_whole():
    """Any cut of a file's rows into units, merged, gives the kinds and column order of one fold over them."""
    rng = random.Random(0)
    values = [None, 1, 2.5, True, "text", [1], {"a": 1}]
    for _ in range(200):
        rows = [{k: rng.choice(values) for k in rng.sample("abcdef", rng.randint(0, 4))} for _ in range(12)]
        whole: dict[str, str] = {}
        for row in rows:
            merge_kinds(whole, row)
        cuts = sorted(rng.sample(range(1, 12), rng.randint(0, 5)))
        units = []
        for a, b in zip([0, *cuts], [*cuts, 12], strict=True):
            units.append({})
            for row in rows[a:b]:
                merge_kinds(units[-1], row)
        merged = merge_kind_maps(units)
        assert list(merged.items()) == list(whole.items())
