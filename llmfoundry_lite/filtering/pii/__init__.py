"""PII scrubbing for the filter stage: emails, public IP addresses and secrets → placeholders.

Documents are redacted, never dropped. ``scrub_pii(text, cfg)`` returns the redacted text and the
findings counted by type ("email", "ip_address", "key"); ``find_pii`` returns the spans with the
rule that fired. The labeled evaluation set and its scorer are measurement, not library: they live in
``benchmarks/quality/`` (``python benchmarks/quality/eval_pii.py`` prints precision and recall per type).
"""

from llmfoundry_lite.filtering.pii.config import PII_TYPES, PIIConfig
from llmfoundry_lite.filtering.pii.scrub import find_pii, redact, scrub_pii
from llmfoundry_lite.filtering.pii.spans import Finding

__all__ = ["PII_TYPES", "Finding", "PIIConfig", "find_pii", "redact", "scrub_pii"]
