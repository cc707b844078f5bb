import pytest

from llmfoundry_lite.filtering.pii import PIIConfig
from llmfoundry_lite.filtering.pii.emails import find_emails

CFG = PIIConfig()


def _found(text: str) -> list[str]:
    return [text[f.start : f.end] for f in find_emails(text, CFG)]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("# Author: Jane Doe <jane.doe@gmail.com>", ["jane.doe@gmail.com"]),
        ('ADMINS = [("Ops", "ops-alerts+pager@fintrack.pl")]', ["ops-alerts+pager@fintrack.pl"]),
        ("Maintainer: hwatanabe@is.s.u-tokyo.ac.jp.", ["hwatanabe@is.s.u-tokyo.ac.jp"]),
        ('<a href="mailto:k.nowak@relaymesh.dev">', ["k.nowak@relaymesh.dev"]),
        ("https://acme.io/contact?email=bob@acme.io", ["bob@acme.io"]),
        ("cla@openvolt.energy and a@b.museum", ["cla@openvolt.energy", "a@b.museum"]),
        ("two: x1@corp.de,y2@corp.de", ["x1@corp.de", "y2@corp.de"]),
    ],
)
def test_addresses_are_found(text, expected):
    assert _found(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "DEFAULT_FROM_EMAIL = 'noreply@example.com'",
        "docs use admin@mail.example.org and you@yourdomain.com",
        "remote = 'git@github.com:org/repo.git'",
        "DATABASE_URL=postgres://admin:s3cr3tP4ss@db.acme.io:5432/app",
        "https://user@bitbucket.org/team/repo.git",
        'srcset="/img/hero@2x.png 2x, logo@3x.jpg 3x"',
        "npm i @babel/core@7.22.5 lodash@4.17.21",
        "out = inputs@self.weight.T",
        "y = x@np.linalg.inv(a)",
        "ghcr.io/acme/relay@sha256:739c95311f56af6a1439a9c2db23ef370b46af52d9cb68de6e496b7f5ed43726",
        "@Override\npublic String toString()",
        "@media (max-width: 600px) { }",
        "root@localhost and user@host",
        "module@file.py: see main@util.sh",
        'printf("%s@%s", user, host)',
    ],
)
def test_decoys_are_left_alone(text):
    assert _found(text) == []


def test_keep_domains_are_configurable():
    cfg = PIIConfig(keep_email_domains=["acme.io"])
    text = "a@acme.io b@mail.acme.io c@example.com"
    assert [text[f.start : f.end] for f in find_emails(text, cfg)] == ["c@example.com"]
