"""Quality of the filters on labelled sets: the PII scrubber (``eval_pii.py`` over ``pii_evalset/``,
against detect-secrets as BigCode ran it, ``pii_baseline.py``; its throughput in ``pii_bench.py``) and
the auto-generated-file rules (``eval_autogen.py`` over ``autogen_labels.tsv``)."""
