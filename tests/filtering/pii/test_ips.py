import pytest

from llmfoundry_lite.filtering.pii import PIIConfig
from llmfoundry_lite.filtering.pii.ips import find_ips

CFG = PIIConfig()


def _found(text: str, cfg: PIIConfig = CFG) -> list[str]:
    return [text[f.start : f.end] for f in find_ips(text, cfg)]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('HOST = "34.117.59.81"', ["34.117.59.81"]),
        ("server 78.46.123.90:8000 backup;", ["78.46.123.90"]),
        ('set_real_ip_from 173.245.48.0/20; allow ["81.2.69.160/27"]', ["173.245.48.0", "81.2.69.160"]),
        ("ssh deploy@159.69.42.118 uptime", ["159.69.42.118"]),
        ('v6 = "2a00:1450:4001:82b::200e"', ["2a00:1450:4001:82b::200e"]),
        ('"[2a01:4f9:c010:a7f1::1]:7000"', ["2a01:4f9:c010:a7f1::1"]),
        ("2405:4802:1d4:9a20:5c1e:8d2f:a1b3:77e0 - - GET /", ["2405:4802:1d4:9a20:5c1e:8d2f:a1b3:77e0"]),
        ("mapped ::ffff:52.95.169.12 here", ["::ffff:52.95.169.12"]),
        ('peers = {"5.188.62.214", "45.134.26.190"}  # blocklist', ["5.188.62.214", "45.134.26.190"]),
        ("host = 1.2.3.4", ["1.2.3.4"]),
        ('81.171.29.146 - - [12/Mar/2024:06:28:44 +0000] "POST /api/login HTTP/1.1" 200', ["81.171.29.146"]),
        ("see http://17.6.5.12/status and 17.6.5.13:8080", ["17.6.5.12", "17.6.5.13"]),
    ],
)
def test_public_addresses_are_found(text, expected):
    assert _found(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        'local = "192.168.1.10"; lo = "127.0.0.1"; ll = "169.254.1.1"; cgn = "100.64.0.1"',
        "ALLOWED = ['10.0.0.0/8', '172.16.0.0/12', 'fd00::/8', 'fe80::1ff:fe23:4567:890a', '::1']",
        "docs: 192.0.2.10, 198.51.100.23, 203.0.113.77, 2001:db8::42",
        "mask 255.255.255.0 bcast 255.255.255.255 any 0.0.0.0 mcast 239.255.255.250 224.0.0.1",
        "resolver 8.8.8.8 8.8.4.4 1.1.1.1 9.9.9.9; 2606:4700:4700::1111",
        '__version__ = "3.1.4.2"',
        'AssemblyVersion("1.0.0.0")',
        "<version>2.4.0.1</version>",
        'version       = "1.19.2.7"',
        "requests==2.31.0.1 ; grpc>=1.59.0.1",
        "- Bump grpc to 1.59.0.1 and protobuf to 4.25.1.",
        "See section 4.2.1.3 of the spec, https://tools.ietf.org/html/draft-19#section-3.4.2.2",
        "Windows 10.0.19041.1 and Server 6.2.9200.16384; OID 1.3.6.1.4.1.57264.1.1",
        'SYS_UPTIME_OID = ".1.3.6.1.2.1.1.3.0"; oid = "2.5.4.3"',
        "build date 2023.04.17 or 12.10.2023; schema 1.2.3.4",
        "Standard Ecma-262, part 15.5.4.11 and [15.5.4.12]",
        '" Idem 8.2.4.42,51: Comment starts with <!--',
        '<path d="M3.51.98.32 2.03.5 3.11.5"/>',
        "MAC 00:1a:2b:3c:4d:5e at 12:30:45",
        "std::vector<int> v; a::b::c; Abc::Def; evens = x[1::2]; y[2000::3000]",
        "zero padded 033.01.033.033",
        "huge block 128.0.0.0/1 and 2600::/12",
        '"11.5.9.0.sb00039210.r1"',
        "// 17.6.5.12 tells us to not worry; ISO C++ 14882: 22.2.1.5",
        "* [`a2fb12f9c6`](https://github.com/nodejs/node/commit/a2fb12f9c6)] - deps: patch V8 to 9.6.180.15",
    ],
)
def test_non_public_and_non_addresses_are_left_alone(text):
    assert _found(text) == []


def test_keep_ips_is_configurable():
    text = "upstream 34.117.59.81 and 8.8.8.8"
    assert _found(text, PIIConfig(keep_ips=["34.117.59.81"])) == ["8.8.8.8"]
