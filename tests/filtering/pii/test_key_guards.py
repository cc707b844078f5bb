import random
import string

import pytest

from llmfoundry_lite.filtering.pii import key_guards


def _random(rng: random.Random, alphabet: str, n: int) -> str:
    return "".join(rng.choice(alphabet) for _ in range(n))


@pytest.mark.parametrize(
    ("alphabet", "length", "max_rate"),
    [
        (string.ascii_letters + string.digits + "+/", 32, 0.02),
        (string.ascii_lowercase + string.digits, 32, 0.02),
        (string.ascii_uppercase + string.digits, 20, 0.04),
    ],
)
def test_random_strings_rarely_read_as_words(alphabet, length, max_rate):
    rng = random.Random(1234)
    samples = [_random(rng, alphabet, length) for _ in range(2000)]
    rate = sum(map(key_guards.is_wordlike, samples)) / len(samples)
    assert rate <= max_rate


@pytest.mark.parametrize(
    "value",
    [
        "someLongFunctionName",
        "usr/lib/python3/dist-packages",
        "LIBXML2_VERSION_STRING",
        "SunTls12KeyMaterial",
        "fintrack-billing-invoices-eu-central-1",
        "HttpServletRequest2Wrapper",
    ],
)
def test_identifiers_and_paths_read_as_words(value):
    assert key_guards.is_wordlike(value)


def test_hex_letters_and_short_values_are_no_evidence():
    assert not key_guards.is_wordlike("fac02d57ad38a34f0d70da542ce40f36-us14")
    assert not key_guards.is_wordlike("ab12")


def test_entropy_uses_detect_secrets_and_all_characters_outside_base64():
    assert key_guards.shannon_entropy("aaaa") == 0.0
    assert key_guards.shannon_entropy("abcd") == pytest.approx(2.0)
    assert key_guards.shannon_entropy("!@#$") == pytest.approx(2.0)  # outside the base64 alphabet
    # detect-secrets lowers the entropy of all-digit hex strings
    assert key_guards.shannon_entropy("1234567890") < key_guards.shannon_entropy("123456789a")


def test_entropy_threshold_is_lowered_only_for_short_strings():
    assert key_guards.entropy_threshold(20, 4.5) == pytest.approx(4.3219 - 0.7, abs=1e-3)
    assert key_guards.entropy_threshold(64, 4.5) == 4.5


@pytest.mark.parametrize(
    ("value", "expected"),
    [("SGVsbG8sIGJsb2Igc3RvcmUgdGVzdCBzdWl0ZSE=", True), ("qHHZYZJ4rdwLDYrsG5czbmyJFFQKmweF", False), ("abc", False)],
)
def test_decodes_to_text(value, expected):
    assert key_guards.decodes_to_text(value) is expected


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("api_key", True),
        ("X-Auth-Token", True),
        ("setPassword", True),
        ("SECRET_KEY", True),
        ("cache_key", False),
        ("primary_key", False),
        ("NextToken", False),
        ("password_hash", False),
        ("keyword", False),
        ("S3Key", False),
    ],
)
def test_secret_names(name, expected):
    assert key_guards.is_secret_name(name) is expected


@pytest.mark.parametrize("value", ["abcdefghijklmnop", "0123456789abcdef", "xxxxxxxxxxxxxxxx", "your-token-goes-here"])
def test_placeholders(value):
    assert key_guards.is_placeholder(value)


def test_identifier_shaped_values_and_random_tokens():
    assert key_guards.is_identifier_shaped("FacebookAI/xlm-mlm-en-2048")
    assert key_guards.is_identifier_shaped("Cryptography_HAS_PSK_TLSv1_3")
    assert key_guards.is_identifier_shaped("us-west-2ab-vpc-215ds366")
    assert not key_guards.is_identifier_shaped("XFvxZisZp9QFSWPAFTx6br5r-1fG17Smf7ZE5U58Wdk")
    rng = random.Random(5)
    samples = [_random(rng, string.ascii_letters + string.digits + "-_", 43) for _ in range(2000)]
    assert sum(map(key_guards.is_identifier_shaped, samples)) / len(samples) <= 0.01


@pytest.mark.parametrize(
    ("name", "expected"),
    [("client_id", True), ("InstallId", True), ("version", True), ("apiKey", False), ("token", False)],
)
def test_id_names(name, expected):
    assert key_guards.is_id_name(name) is expected
