from llmfoundry_lite.filtering.pii import Finding, PIIConfig, find_pii, redact, scrub_pii
from llmfoundry_lite.filtering.pii.spans import resolve_overlaps

DOC = (
    "# Author: Jane Doe <jane.doe@gmail.com>\n"
    'HOST = "34.117.59.81"  # resolver 8.8.8.8, lan 192.168.1.10\n'
    'AWS_ACCESS_KEY_ID = "AKIA7LRWFVEALKXWKKXZ"\n'
    '__version__ = "1.2.3.4"\n'
)


def test_scrub_redacts_each_type_and_counts_it():
    text, counts = scrub_pii(DOC, PIIConfig())
    assert text == (
        "# Author: Jane Doe <<EMAIL>>\n"
        'HOST = "<IP_ADDRESS>"  # resolver 8.8.8.8, lan 192.168.1.10\n'
        'AWS_ACCESS_KEY_ID = "<KEY>"\n'
        '__version__ = "1.2.3.4"\n'
    )
    assert counts == {"email": 1, "ip_address": 1, "key": 1}


def test_counts_always_hold_every_type():
    text, counts = scrub_pii("print('hello')\n", PIIConfig())
    assert text == "print('hello')\n"
    assert counts == {"email": 0, "ip_address": 0, "key": 0}


def test_placeholders_and_switches_are_configurable():
    cfg = PIIConfig(email_placeholder="[email]", ip_addresses=False, keys=False)
    text, counts = scrub_pii(DOC, cfg)
    assert "[email]" in text and "34.117.59.81" in text and "AKIA7LRWFVEALKXWKKXZ" in text
    assert counts == {"email": 1, "ip_address": 0, "key": 0}
    assert scrub_pii(DOC, PIIConfig(enabled=False)) == (DOC, {"email": 0, "ip_address": 0, "key": 0})


def test_scrubbing_is_idempotent():
    once, _ = scrub_pii(DOC, PIIConfig())
    twice, counts = scrub_pii(once, PIIConfig())
    assert twice == once and counts == {"email": 0, "ip_address": 0, "key": 0}


def test_url_password_wins_over_email_lookalike():
    doc = "DATABASE_URL=postgres://admin:Xk9mP2vL5qR8@db.acme.io:5432/app\n"
    assert [(f.kind, f.rule) for f in find_pii(doc, PIIConfig())] == [("key", "url_password")]
    assert scrub_pii(doc, PIIConfig())[0] == "DATABASE_URL=postgres://admin:<KEY>@db.acme.io:5432/app\n"


def test_offsets_survive_text_whose_lowercase_changes_length():
    doc = "İstanbul office\napi_token = 'qHHZYZJ4rdwLDYrsG5czbmyJFFQKmweF'\n"  # 'İ'.lower() is two characters
    assert scrub_pii(doc, PIIConfig())[0] == "İstanbul office\napi_token = '<KEY>'\n"


def test_resolve_overlaps_prefers_earlier_longer_and_named_rules():
    found = [
        Finding(5, 9, "email", "email"),
        Finding(0, 10, "key", "high_entropy"),
        Finding(0, 10, "key", "GitHubTokenDetector"),
        Finding(12, 14, "ip_address", "ipv4"),
    ]
    assert resolve_overlaps(found) == [
        Finding(0, 10, "key", "GitHubTokenDetector"),
        Finding(12, 14, "ip_address", "ipv4"),
    ]
    assert redact("0123456789__ab", resolve_overlaps(found), PIIConfig()) == "<KEY>__<IP_ADDRESS>"
