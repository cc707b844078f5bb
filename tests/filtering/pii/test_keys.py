import pytest

from llmfoundry_lite.filtering.pii import PIIConfig
from llmfoundry_lite.filtering.pii.keys import PLUGIN_HINTS, _plugins, find_keys

CFG = PIIConfig()


def _found(text: str, cfg: PIIConfig = CFG) -> list[str]:
    return sorted({text[f.start : f.end] for f in find_keys(text, cfg)})


@pytest.mark.parametrize(
    ("text", "secret", "rule"),
    [
        ('AWS_ACCESS_KEY_ID = "AKIA7LRWFVEALKXWKKXZ"', "AKIA7LRWFVEALKXWKKXZ", "AWSKeyDetector"),
        (
            "GITHUB_TOKEN=ghp_TOWIsYy2e2CnjTaDjgzdWu252SYlE4Ivwpm1",
            "ghp_TOWIsYy2e2CnjTaDjgzdWu252SYlE4Ivwpm1",
            "GitHubTokenDetector",
        ),
        (
            "t = 'xoxb-738011474381-9792971124787-3xYQoOjDr8BrrCZYJRbR1Dtf'",
            "xoxb-738011474381-9792971124787-3xYQoOjDr8BrrCZYJRbR1Dtf",
            "SlackDetector",
        ),
        ("stripe.api_key = 'sk_live_sgbDxtLVuT5HTpta4OKzpzVw'", "sk_live_sgbDxtLVuT5HTpta4OKzpzVw", "StripeDetector"),
        (
            "K = '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'",
            "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",
            "SendGridDetector",
        ),
        ("MC=fac02d57ad38a34f0d70da542ce40f36-us14", "fac02d57ad38a34f0d70da542ce40f36-us14", "MailchimpDetector"),
    ],
)
def test_known_formats_use_detect_secrets_plugins(text, secret, rule):
    found = find_keys(text, CFG)
    assert _found(text) == [secret]
    assert rule in {f.rule for f in found}


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        ('client = Client("Xk9mP2vL5qR8sT1wY4zA6bC3dE7fG0hJ")', "Xk9mP2vL5qR8sT1wY4zA6bC3dE7fG0hJ"),
        ("SESSION_SECRET=qHHZYZJ4rdwLDYrsG5czbmyJFFQKmweF", "qHHZYZJ4rdwLDYrsG5czbmyJFFQKmweF"),
        ('api_key = "d38bc5076341711efcb20f657962f964"', "d38bc5076341711efcb20f657962f964"),
        (
            "spring.datasource.password=9DCGn5wRyS23B7/PCzU8iwji5Fr4kbTA+yKXmhY0",
            "9DCGn5wRyS23B7/PCzU8iwji5Fr4kbTA+yKXmhY0",
        ),
        (
            'SECRET_KEY = "5q6vv_hzxht@^h=rmp))&8e3vvazn!enusv^$l#p2u8^)j!nh("',
            "5q6vv_hzxht@^h=rmp))&8e3vvazn!enusv^$l#p2u8^)j!nh(",
        ),
        ("'key' => 'base64:mFrNF/VyunCBezMkejMG0RLxpntAsgoO',", "mFrNF/VyunCBezMkejMG0RLxpntAsgoO"),
        (
            'curl -H "Authorization: Bearer b4pLIoAW-FdAX0sbVByZaOUxAsGdSwx9F7E0rOjh_f0" x',
            "b4pLIoAW-FdAX0sbVByZaOUxAsGdSwx9F7E0rOjh_f0",
        ),
        ("DATABASE_URL=postgres://ingest:AiHQ6OdlRpCKUh5U@34.89.200.17:5432/db", "AiHQ6OdlRpCKUh5U"),
        ("REDIS_URL=redis://:cHhxBNy3nsn0Ge3Z@10.0.3.14:6379/0", "cHhxBNy3nsn0Ge3Z"),
    ],
)
def test_high_entropy_and_url_secrets(text, secret):
    assert _found(text) == [secret]


@pytest.mark.parametrize(
    "text",
    [
        'TEST_AWS_ACCESS_KEY_ID = "AKIAIOSFODNN7EXAMPLE"',
        'TEST_AWS_SECRET_ACCESS_KEY = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"',
        'client = Client(api_key="YOUR_API_KEY") or "your-api-key-here"',
        '"readme.txt": "49dbc3641a2037224e3bd6a7d4d92658a2d296806cc1a0196348f6974b20fe91",  # sha256',
        'FIXTURE_COMMIT = "4cd6d0d8e24b04664eacbb7291e9ffb9e6251a2a"',
        'API_SECRET_HASH = "12b98655923bc8bd51669ab093222a9a24021275"',
        'NAMESPACE = uuid.UUID("f8128d40-2028-4dee-a507-647caaad4b89")',
        '"InstrumentationKey": "eae97b80-2346-4b76-976f-a7c0c7e7c187"',
        '"integrity": "sha512-si0hW+CVXsmi6ANem+gcuv2YGrJZZC0/LUmjnyw3kr4Z9yQpa2s0cYHUMRx7fMUbtCufDNFNyR90Sjyd8fBgmg=="',
        'integrity="sha384-ljopyphyUwFCZ9UbxyYAZmNBoZNX/Chy/3kBDl6PJ5RCueRpRDIx2K2HOAkWUBHH"',
        "github.com/davecgh/go-spew v1.1.1 h1:VfcLCnixwr0PGkxMyY8SraovhIsZuLjkW4M0Gbf3qj4=",
        "--hash=sha256:539cc1d13202e33ca466e88b2807e29f4c13049d6d87031a3c110744495cb082",
        'url("data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAABAAAAAQCAYAAAAf8/9hAAAAGXRFWHRTb2Z0d2FyZQ==")',
        'ENCODED = "SGVsbG8sIGJsb2Igc3RvcmUgdGVzdCBzdWl0ZSE="',
        'name = "some_long_function_name_2"; path = "usr/lib/python3/dist-packages"',
        'SESSION_COOKIE_NAME = "billing_session_identifier_v2"',
        'AES_TEST_KEY = bytes.fromhex("000102030405060708090a0b0c0d0e0f")',
        'cache_key = "user_profile_12345678901234"',
        '"NextToken": "U2FsdGVkX18vvPlOqb7RDrWRWVFBJI46"',
        "DATABASE_URL: postgres://postgres:postgres@localhost:5432/test",
        "url = 'mysql://root:${DB_PASSWORD}@db/app'",
        '"S3Key": "RHEL5export-i-fh8sjjsq.ova"',
        '"Id": "dt_2wjDZi3hD1ivOXf6rpZJOSNE1AB"',
        '"PasswordLastUsed": "2016-09-08T21:47:36Z",',
        "Key newKey = RSAPrivateCrtKeyImpl.newKey(RSA, data);",
        '"AWS::KMS::Key": "2b447c471bc70388",',
        'keyMaterialAlg = "SunTls12KeyMaterial";',
    ],
)
def test_decoys_are_left_alone(text):
    assert _found(text) == []


def test_pem_private_key_body_is_redacted_but_not_certificates_or_doc_stubs():
    body = "\n".join(["MIIEowIBAAKCAQEAzWg2xQnDWO4zk6aDem/qXAjCcctwsT0dnMcnHXlyzr5BYPRx"] * 3)
    text = (
        f'KEY = """-----BEGIN RSA PRIVATE KEY-----\n{body}\n-----END RSA PRIVATE KEY-----\n"""\n'
        "CERT = '-----BEGIN CERTIFICATE-----\\nMIIBszCCAVmgAwIBAgIUBj8YV2nwl1Pmb8kPqk0ZQf3J\\n-----END CERTIFICATE-----'\n"
        "DOC = '-----BEGIN OPENSSH PRIVATE KEY-----\\n...your key here...\\n-----END OPENSSH PRIVATE KEY-----'\n"
    )
    found = [f for f in find_keys(text, CFG) if f.rule == "pem_private_key"]
    assert [text[f.start : f.end] for f in found] == [body]


def test_plugin_hints_never_hide_a_match():
    """Every plugin with hints finds nothing on text that holds none of its hints."""
    samples = [
        "AKIA7LRWFVEALKXWKKXZ ghp_TOWIsYy2e2CnjTaDjgzdWu252SYlE4Ivwpm1 sk_live_sgbDxtLVuT5HTpta4OKzpzVw",
        "1107461567:AA_VraYkrLOo594Bclbi9OS_Qt-ojM4emvL ACbxze17h7yt8ex7dfolqvpl6kbqe3t8w8",
        "glpat-L5qC0d2NhEHUyIX2edz4 fac02d57ad38a34f0d70da542ce40f36-us14 sq0csp-" + "a" * 43,
        "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJ1XzgxNzIzIn0.iuFNY8D7pjaboOvISOJBZhhVmbU",
        "ibm_cloud_iam_api_key = 'abcdefghijABCDEFGHIJ0123456789abcdefghijABCD'",
    ]
    for plugin in _plugins(tuple(CFG.key_plugins)):
        hints = PLUGIN_HINTS.get(type(plugin).__name__)
        if hints is None:
            continue
        for sample in samples:
            hits = list(plugin.analyze_string(sample))
            if hits:
                assert any(h in sample.lower() for h in hints), (type(plugin).__name__, hits)


def test_switching_plugins_off():
    cfg = PIIConfig(key_plugins=["GitHubTokenDetector"])
    text = "t = AKIA7LRWFVEALKXWKKXZ"  # unquoted, no secret-looking name: only the AWS plugin would fire
    assert _found(text, cfg) == []
    assert _found(text) == ["AKIA7LRWFVEALKXWKKXZ"]
