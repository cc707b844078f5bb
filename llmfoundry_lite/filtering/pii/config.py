"""Typed ``pii:`` section of the filter config (stdlib only, cheap to import)."""

from __future__ import annotations

from dataclasses import dataclass, field

PII_TYPES = ("email", "ip_address", "key")
"""Finding types, in the order they are reported."""

KNOWN_FORMAT_PLUGINS = (
    "ArtifactoryDetector",
    "AWSKeyDetector",
    "AzureStorageKeyDetector",
    "CloudantDetector",
    "DiscordBotTokenDetector",
    "GitHubTokenDetector",
    "GitLabTokenDetector",
    "IbmCloudIamDetector",
    "IbmCosHmacDetector",
    "JwtTokenDetector",
    "MailchimpDetector",
    "NpmDetector",
    "OpenAIDetector",
    "PypiTokenDetector",
    "SendGridDetector",
    "SlackDetector",
    "SoftlayerDetector",
    "SquareOAuthDetector",
    "StripeDetector",
    "TelegramBotTokenDetector",
    "TwilioKeyDetector",
)
"""detect-secrets 1.5 plugins for credential formats with a fixed shape. Left out on purpose: the two
high-entropy plugins (their entropy maths is reused, but candidates are chosen here with guards),
KeywordDetector and BasicAuthDetector (BigCode dropped them for their false positives; URL passwords
are handled by a guarded rule of our own), PrivateKeyDetector (it flags only the header line; PEM
bodies are redacted by our own rule) and IPPublicDetector (IPs have their own detector)."""

PUBLIC_DNS_RESOLVERS = (
    "8.8.8.8",
    "8.8.4.4",  # Google
    "1.1.1.1",
    "1.0.0.1",  # Cloudflare
    "9.9.9.9",
    "149.112.112.112",  # Quad9
    "208.67.222.222",
    "208.67.220.220",  # OpenDNS
    "64.6.64.6",
    "64.6.65.6",  # Verisign
    "8.26.56.26",
    "8.20.247.20",  # Comodo
    "84.200.69.80",
    "84.200.70.40",  # DNS.WATCH
    "77.88.8.8",
    "77.88.8.1",  # Yandex
    "94.140.14.14",
    "94.140.15.15",  # AdGuard
    "185.228.168.9",
    "76.76.2.0",  # CleanBrowsing, Control D
    "2001:4860:4860::8888",
    "2001:4860:4860::8844",
    "2606:4700:4700::1111",
    "2606:4700:4700::1001",
    "2620:fe::fe",
    "2620:fe::9",
)

PLACEHOLDER_EMAIL_DOMAINS = (
    "example.com",
    "example.org",
    "example.net",
    "example.edu",
    "domain.com",
    "yourdomain.com",
    "your-domain.com",
    "mydomain.com",
    "yourcompany.com",
)


@dataclass
class PIIConfig:
    """Redaction of emails, IP addresses and secret keys (documents are redacted, never dropped)."""

    enabled: bool = True
    """Run the PII scrub at all."""
    emails: bool = True
    """Redact email addresses."""
    ip_addresses: bool = True
    """Redact public IPv4/IPv6 addresses (private, loopback, link-local, documentation, reserved
    ranges and ``keep_ips`` are left alone)."""
    keys: bool = True
    """Redact secrets: known credential formats, guarded high-entropy strings, PEM private-key
    bodies and passwords inside URLs."""
    email_placeholder: str = "<EMAIL>"
    """Replacement text for an email address."""
    ip_placeholder: str = "<IP_ADDRESS>"
    """Replacement text for an IP address (a CIDR suffix such as ``/24`` is kept)."""
    key_placeholder: str = "<KEY>"
    """Replacement text for a secret."""
    keep_ips: list[str] = field(default_factory=lambda: list(PUBLIC_DNS_RESOLVERS))
    """Public addresses that are not personal data (well-known DNS resolvers by default)."""
    keep_email_domains: list[str] = field(default_factory=lambda: list(PLACEHOLDER_EMAIL_DOMAINS))
    """Email domains (and their subdomains) that are placeholders, not personal data."""
    key_plugins: list[str] = field(default_factory=lambda: list(KNOWN_FORMAT_PLUGINS))
    """detect-secrets plugin class names used for known credential formats."""
    key_min_length: int = 20
    """Shortest quoted string that the high-entropy rule considers."""
    keyword_key_min_length: int = 16
    """Shortest value considered when it is assigned to a secret-looking name (``api_key = ...``)."""
    key_max_length: int = 200
    """Longer high-entropy strings are embedded data (images, fonts), not keys — unless assigned to
    a secret-looking name."""
    base64_entropy_limit: float = 4.5
    """Shannon entropy (bits/char) above which a base64-alphabet string counts as random
    (detect-secrets' default)."""
    hex_entropy_limit: float = 3.0
    """Same for hex strings (detect-secrets' default and its all-digits correction)."""
    keyword_entropy_limit: float = 3.5
    """Lower entropy bar for values assigned to a secret-looking name."""

    def __post_init__(self) -> None:
        unknown = sorted(set(self.key_plugins) - set(KNOWN_FORMAT_PLUGINS))
        if unknown:
            raise ValueError(
                f"pii.key_plugins: unknown plugin(s) {unknown}; choose from {sorted(KNOWN_FORMAT_PLUGINS)}"
            )
        for name in ("email_placeholder", "ip_placeholder", "key_placeholder"):
            if not getattr(self, name):
                raise ValueError(f"pii.{name} must be a non-empty string")
        for name in ("key_min_length", "keyword_key_min_length"):
            if getattr(self, name) < 8:
                raise ValueError(f"pii.{name} must be at least 8, got {getattr(self, name)}")
        if self.key_max_length < self.key_min_length:
            raise ValueError(
                f"pii.key_max_length ({self.key_max_length}) must be >= pii.key_min_length ({self.key_min_length})"
            )
        for name in ("base64_entropy_limit", "hex_entropy_limit", "keyword_entropy_limit"):
            if not 0.0 <= getattr(self, name) <= 8.0:
                raise ValueError(f"pii.{name} must be within [0, 8] bits per character, got {getattr(self, name)}")
