"""Packed, deterministic MDS shards of tokenized code (``build_shards``) and their manifest.

``check_shards_manifest`` (in ``manifest.py``) is what training calls before reading
shards; ``stack.py`` chains corpus → filter → vocabulary → shards for ``shard_stack.py``.
"""
