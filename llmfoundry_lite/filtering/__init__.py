"""Filter stage of data prep (issue 3): ``pipeline.run_filter(FilterConfig)``.

Module map: ``config`` (typed options), ``heuristics`` / ``autogen`` / ``parse`` (per-document
filters), ``pii/`` (redaction), ``documents`` (the per-document chain), ``dedup`` + ``dedup_pass``
(fingerprints and global clustering), ``shards`` (restartable per-shard units),
``local_engine`` / ``spark_engine`` (executors), ``report`` (stats, PNGs, headline table).
"""
