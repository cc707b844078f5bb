import pytest

from llmfoundry_lite.config import ConfigError, load_config
from llmfoundry_lite.filtering.pii import PII_TYPES, PIIConfig
from llmfoundry_lite.filtering.pii.config import KNOWN_FORMAT_PLUGINS, PUBLIC_DNS_RESOLVERS


def test_defaults_cover_all_types_and_placeholders():
    cfg = PIIConfig()
    assert PII_TYPES == ("email", "ip_address", "key")
    assert (cfg.email_placeholder, cfg.ip_placeholder, cfg.key_placeholder) == ("<EMAIL>", "<IP_ADDRESS>", "<KEY>")
    assert cfg.key_plugins == list(KNOWN_FORMAT_PLUGINS)
    assert "8.8.8.8" in cfg.keep_ips and "2606:4700:4700::1111" in cfg.keep_ips
    assert len(PUBLIC_DNS_RESOLVERS) >= 14


def test_known_format_plugins_exist_in_detect_secrets():
    from detect_secrets.core.plugins.util import get_mapping_from_secret_type_to_class

    names = {cls.__name__ for cls in get_mapping_from_secret_type_to_class().values()}
    assert set(KNOWN_FORMAT_PLUGINS) <= names
    excluded = names - set(KNOWN_FORMAT_PLUGINS)
    assert excluded == {
        "KeywordDetector",
        "BasicAuthDetector",
        "PrivateKeyDetector",
        "IPPublicDetector",
        "Base64HighEntropyString",
        "HexHighEntropyString",
    }


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("key_plugins=[NoSuchDetector]", r"pii.key_plugins: unknown plugin\(s\) \['NoSuchDetector'\]; choose from"),
        ("key_placeholder=''", "pii.key_placeholder must be a non-empty string"),
        ("key_min_length=4", "pii.key_min_length must be at least 8"),
        ("key_max_length=10", r"pii.key_max_length \(10\) must be >= pii.key_min_length \(20\)"),
        ("base64_entropy_limit=9.0", r"pii.base64_entropy_limit must be within \[0, 8\]"),
    ],
)
def test_bad_values_name_the_key(override, message):
    with pytest.raises(ConfigError, match=message):
        load_config(PIIConfig, None, [override])


def test_unknown_key_is_refused():
    with pytest.raises(ConfigError, match="unknown config key 'emials'"):
        load_config(PIIConfig, None, ["emials=false"])


def test_overrides_apply():
    cfg = load_config(PIIConfig, None, ["key_placeholder=<SECRET>", "keys=false", "keep_ips=[34.117.59.81]"])
    assert cfg.key_placeholder == "<SECRET>" and cfg.keys is False and cfg.keep_ips == ["34.117.59.81"]
