"""Filter stage of data prep (issue 3): heuristics, auto-generated code, parsing, dedup, PII, X-ray."""
