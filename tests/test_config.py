from __future__ import annotations

from ipaddress import IPv6Network
from pathlib import Path
from typing import Any

import pytest
import yaml

from v6alt.config import (
    DEFAULT_CONFIG_YAML,
    Config,
    ConfigError,
    PinningSettings,
    RangeSettings,
    SecureRange,
    SidecarSettings,
    SynapseSettings,
    format_path,
    load_config,
    parse_config,
)
from v6alt.errors import V6AltError

DOCS = Path(__file__).resolve().parent.parent / "docs" / "config.md"

FULL_YAML = """\
ranges:
  allow: ["200::/7", "2000::/3", "64:ff9b::/96"]
  cjdns: true
  unsafe_allow: ["::1/128", "fd00:1::/32"]
ip_bound_trust: false
secure_ranges:
  - cidr: "200::/8"
    tls: off
    trust_any_certificate: true
  - cidr: "200:1234::/32"
    tls: required
    trust_any_certificate: false
    pinning: warn
pinning:
  default: warn
  file: /var/lib/synapse/pins.json
synapse:
  inbound_ip_binding: enforce
sidecar:
  dns_listen: "127.0.0.1:53"
  lookup_listen: "[::1]:0"
  forwarders: ["[2001:4860:4860::8888]:53", "9.9.9.9", "[::1]"]
"""


def net(text: str) -> IPv6Network:
    return IPv6Network(text)


# --- defaults ---------------------------------------------------------------


def test_defaults_yaml_equals_built_in_defaults() -> None:
    assert parse_config(yaml.safe_load(DEFAULT_CONFIG_YAML)) == parse_config(None)
    assert parse_config(None) == parse_config({}) == Config()


def test_default_values() -> None:
    config = parse_config(None)
    assert config.ranges.allow == (net("200::/7"), net("2000::/3"))
    assert config.ranges.cjdns is False
    assert config.ranges.unsafe_allow == ()
    assert config.ip_bound_trust is True
    assert config.secure_ranges == ()
    assert config.synapse.inbound_ip_binding == "log"
    assert config.sidecar.dns_listen == ("::1", 5353)
    assert config.sidecar.lookup_listen == ("::1", 5380)
    assert config.sidecar.forwarders == ()


def test_docs_embed_the_default_yaml_verbatim() -> None:
    assert "```yaml\n" + DEFAULT_CONFIG_YAML + "```" in DOCS.read_text(encoding="utf-8")


def test_empty_sections_mean_defaults() -> None:
    data = yaml.safe_load("ranges:\nsynapse:\nsidecar:\n")
    assert parse_config(data) == Config()


# --- a full config ------------------------------------------------------------


def test_full_config() -> None:
    config = parse_config(yaml.safe_load(FULL_YAML))
    assert config == Config(
        ranges=RangeSettings(
            allow=(net("200::/7"), net("2000::/3"), net("64:ff9b::/96")),
            cjdns=True,
            unsafe_allow=(net("::1/128"), net("fd00:1::/32")),
        ),
        ip_bound_trust=False,
        secure_ranges=(
            SecureRange(net("200::/8"), "off", True),
            SecureRange(net("200:1234::/32"), "required", False, "warn"),
        ),
        pinning=PinningSettings("warn", "/var/lib/synapse/pins.json"),
        synapse=SynapseSettings("enforce"),
        sidecar=SidecarSettings(
            dns_listen=("127.0.0.1", 53),
            lookup_listen=("::1", 0),
            forwarders=(("2001:4860:4860::8888", 53), ("9.9.9.9", 53), ("::1", 53)),
        ),
    )


@pytest.mark.parametrize("text", [DEFAULT_CONFIG_YAML, FULL_YAML])
def test_to_dict_round_trips(text: str) -> None:
    config = parse_config(yaml.safe_load(text))
    assert parse_config(config.to_dict()) == config
    # And through YAML text, as `config check --json` or a generated file would.
    assert parse_config(yaml.safe_load(yaml.safe_dump(config.to_dict()))) == config


@pytest.mark.parametrize("spelling", ["off", "'off'", "false", "no"])
def test_off_may_be_written_unquoted(spelling: str) -> None:
    data = yaml.safe_load(
        f"secure_ranges: [{{cidr: '200::/8', tls: {spelling}}}]\n"
        f"synapse: {{inbound_ip_binding: {spelling}}}\n"
    )
    config = parse_config(data)
    assert config.secure_ranges[0].tls == "off"
    assert config.synapse.inbound_ip_binding == "off"


def test_bare_address_is_a_128() -> None:
    config = parse_config({"secure_ranges": [{"cidr": "200::1", "trust_any_certificate": True}]})
    assert config.secure_ranges == (SecureRange(net("200::1/128"), "required", True),)


def test_a_secure_range_lifts_nothing_unless_it_says_so() -> None:
    # Until 0.1.0 an unwritten trust_any_certificate meant true.
    config = parse_config({"secure_ranges": [{"cidr": "2a00::/16", "tls": "off"}]})
    assert config.secure_ranges == (SecureRange(net("2a00::/16"), "off", None, None),)
    assert "trust_any_certificate" not in config.to_dict()["secure_ranges"][0]
    explicit = {"cidr": "2a00::/16", "tls": "off", "trust_any_certificate": None}
    assert parse_config({"secure_ranges": [explicit]}) == config


def test_pinning_defaults() -> None:
    assert parse_config({}).pinning == PinningSettings("enforce", None)
    assert parse_config({"pinning": None}).pinning == PinningSettings("enforce", None)
    assert parse_config({"pinning": {"default": False}}).pinning.default == "off"


@pytest.mark.parametrize(
    ("data", "path"),
    [
        ({"pinning": {"default": "strict"}}, ("pinning", "default")),
        ({"pinning": {"file": 3}}, ("pinning", "file")),
        ({"pinning": {"file": ""}}, ("pinning", "file")),
        ({"pinning": {"files": "x"}}, ("pinning", "files")),
        ({"pinning": "enforce"}, ("pinning",)),
        (
            {"secure_ranges": [{"cidr": "2a00::/16", "pinning": "on"}]},
            ("secure_ranges", 0, "pinning"),
        ),
    ],
)
def test_pinning_errors_name_the_key(data: object, path: tuple[object, ...]) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(data)
    assert caught.value.path == path


def test_ipv6_hosts_are_normalised() -> None:
    config = parse_config({"sidecar": {"dns_listen": "[0:0::0001]:53"}})
    assert config.sidecar.dns_listen == ("::1", 53)


def test_config_is_frozen() -> None:
    config = parse_config(None)
    with pytest.raises(AttributeError):
        config.ip_bound_trust = False  # type: ignore[misc]


# --- errors -------------------------------------------------------------------

ERRORS: list[tuple[Any, tuple[str | int, ...], str]] = [
    # shape
    (["ranges"], (), "the top level must be a mapping, got a list"),
    ("ranges", (), "the top level must be a mapping, got string 'ranges'"),
    ({"rangse": {}}, ("rangse",), "unknown key; did you mean 'ranges'?"),
    ({"zzz": 1}, ("zzz",), "unknown key; known keys: ranges, ip_bound_trust,"),
    ({1: 2}, (), "key 1 is not a string"),
    ({"ranges": {"alow": []}}, ("ranges", "alow"), "unknown key; did you mean 'allow'?"),
    ({"ranges": []}, ("ranges",), "expected a mapping, got a list"),
    ({"synapse": "log"}, ("synapse",), "expected a mapping, got string 'log'"),
    ({"sidecar": 5}, ("sidecar",), "expected a mapping, got int 5"),
    # lists
    (
        {"ranges": {"allow": "200::/7"}},
        ("ranges", "allow"),
        "expected a list of CIDRs, got string '200::/7' (write [\"200::/7\"])",
    ),
    ({"ranges": {"allow": None}}, ("ranges", "allow"), "expected a list of CIDRs, got null"),
    ({"secure_ranges": {"cidr": "200::/8"}}, ("secure_ranges",), "expected a list of secure"),
    ({"sidecar": {"forwarders": "[::1]:53"}}, ("sidecar", "forwarders"), "expected a list of"),
    # CIDRs
    (
        {"ranges": {"allow": ["200::/7", "200::/129"]}},
        ("ranges", "allow", 1),
        "'200::/129' is not an IPv6 network (CIDR)",
    ),
    ({"ranges": {"allow": ["yggdrasil"]}}, ("ranges", "allow", 0), "is not an IPv6 network"),
    ({"ranges": {"allow": [7]}}, ("ranges", "allow", 0), "expected a CIDR string"),
    ({"ranges": {"allow": [None]}}, ("ranges", "allow", 0), "got null"),
    (
        {"ranges": {"allow": ["200::1/7"]}},
        ("ranges", "allow", 0),
        "'200::1/7' has host bits set; did you mean '200::/7'?",
    ),
    (
        {"ranges": {"allow": ["10.0.0.0/8"]}},
        ("ranges", "allow", 0),
        "'10.0.0.0/8' is an IPv4 network; v6alt judges IPv6 addresses only",
    ),
    ({"ranges": {"allow": ["fe80::%eth0/64"]}}, ("ranges", "allow", 0), "zone index"),
    (
        {"ranges": {"allow": ["200::/7", "2000::/3", "200::/7"]}},
        ("ranges", "allow", 2),
        "'200::/7' duplicates ranges.allow[0]",
    ),
    (
        {"ranges": {"allow": ["fd00:1::/32"]}},
        ("ranges", "allow", 0),
        "'fd00:1::/32' lies inside never-dial ULA (fd00::/8), which ranges.allow cannot lift; "
        "use ranges.unsafe_allow",
    ),
    ({"ranges": {"allow": ["::1"]}}, ("ranges", "allow", 0), "never-dial loopback (::1/128)"),
    # booleans
    ({"ranges": {"cjdns": "yes please"}}, ("ranges", "cjdns"), "expected true or false, got str"),
    ({"ranges": {"cjdns": 1}}, ("ranges", "cjdns"), "expected true or false, got int 1"),
    ({"ip_bound_trust": None}, ("ip_bound_trust",), "expected true or false, got null"),
    # unsafe_allow
    (
        {"ranges": {"unsafe_allow": ["2a00::/16"]}},
        ("ranges", "unsafe_allow", 0),
        "'2a00::/16' is not inside a never-dial range; unsafe_allow only lifts never-dial "
        "ranges (loopback, ULA, ...), use ranges.allow for other addresses",
    ),
    (
        {"ranges": {"unsafe_allow": ["::/0"]}},
        ("ranges", "unsafe_allow", 0),
        "is not inside a never-dial range",
    ),
    (
        {"ranges": {"unsafe_allow": ["fc00::/7"]}},
        ("ranges", "unsafe_allow", 0),
        "is not inside a never-dial range",
    ),
    (
        {"ranges": {"unsafe_allow": ["::1/128", "::1"]}},
        ("ranges", "unsafe_allow", 1),
        "'::1/128' duplicates ranges.unsafe_allow[0]",
    ),
    # secure ranges
    ({"secure_ranges": ["200::/8"]}, ("secure_ranges", 0), "expected a mapping with cidr"),
    ({"secure_ranges": [{"tls": "off"}]}, ("secure_ranges", 0), "missing required key 'cidr'"),
    (
        {"secure_ranges": [{"cidr": "200::/8", "tsl": "off"}]},
        ("secure_ranges", 0, "tsl"),
        "unknown key; did you mean 'tls'?",
    ),
    (
        {"secure_ranges": [{"cidr": "200::/8", "tls": "optional"}]},
        ("secure_ranges", 0, "tls"),
        "expected one of 'required' or 'off', got string 'optional'",
    ),
    (
        {"secure_ranges": [{"cidr": "200::/8", "tls": True}]},
        ("secure_ranges", 0, "tls"),
        "expected one of 'required' or 'off', got true",
    ),
    (
        {"secure_ranges": [{"cidr": "200::/8", "trust_any_certificate": "no"}]},
        ("secure_ranges", 0, "trust_any_certificate"),
        "expected true or false, got string 'no'",
    ),
    (
        {"secure_ranges": [{"cidr": "200::1/8"}]},
        ("secure_ranges", 0, "cidr"),
        "has host bits set; did you mean '200::/8'?",
    ),
    (
        {"secure_ranges": [{"cidr": "10.1.0.0/16"}]},
        ("secure_ranges", 0, "cidr"),
        "is an IPv4 network",
    ),
    (
        {"secure_ranges": [{"cidr": "200::/8"}, {"cidr": "200:1::/32"}, {"cidr": "200::/8"}]},
        ("secure_ranges", 2, "cidr"),
        "'200::/8' duplicates secure_ranges[0]",
    ),
    # synapse
    (
        {"synapse": {"inbound_ip_binding": "strict"}},
        ("synapse", "inbound_ip_binding"),
        "expected one of 'off' or 'log' or 'enforce', got string 'strict'",
    ),
    (
        {"synapse": {"inbound_ip_binding": True}},
        ("synapse", "inbound_ip_binding"),
        "got true",
    ),
    # sidecar endpoints
    (
        {"sidecar": {"dns_listen": "::1:5353"}},
        ("sidecar", "dns_listen"),
        "'::1:5353': an IPv6 address must be in brackets, e.g. '[::1]:5353'",
    ),
    ({"sidecar": {"dns_listen": "[::1]"}}, ("sidecar", "dns_listen"), "has no port"),
    ({"sidecar": {"dns_listen": "[::1"}}, ("sidecar", "dns_listen"), "unclosed '['"),
    ({"sidecar": {"dns_listen": "[::1]5353"}}, ("sidecar", "dns_listen"), "expected ':port'"),
    ({"sidecar": {"dns_listen": "[200::x]:53"}}, ("sidecar", "dns_listen"), "not an IPv6"),
    ({"sidecar": {"dns_listen": "[fe80::1%eth0]:53"}}, ("sidecar", "dns_listen"), "zone index"),
    ({"sidecar": {"dns_listen": "localhost:53"}}, ("sidecar", "dns_listen"), "not an IP address"),
    ({"sidecar": {"dns_listen": 5353}}, ("sidecar", "dns_listen"), 'expected a "host:port"'),
    (
        {"sidecar": {"dns_listen": "[::1]:65536"}},
        ("sidecar", "dns_listen"),
        "'[::1]:65536': port 65536 is out of range 0-65535",
    ),
    (
        {"sidecar": {"lookup_listen": "[::1]:99999999"}},
        ("sidecar", "lookup_listen"),
        "port 99999999 is out of range",
    ),
    ({"sidecar": {"lookup_listen": "[::1]:http"}}, ("sidecar", "lookup_listen"), "not a number"),
    ({"sidecar": {"lookup_listen": "[::1]:-1"}}, ("sidecar", "lookup_listen"), "not a number"),
    ({"sidecar": {"lookup_listen": "[::1]:"}}, ("sidecar", "lookup_listen"), "not a number"),
    (
        {"sidecar": {"forwarders": ["[::1]:53", "[::1]:0"]}},
        ("sidecar", "forwarders", 1),
        "port 0 is out of range 1-65535",
    ),
    (
        {"sidecar": {"forwarders": ["dns.example:53"]}},
        ("sidecar", "forwarders", 0),
        "host 'dns.example' is not an IP address",
    ),
]


@pytest.mark.parametrize(("data", "path", "reason"), ERRORS)
def test_config_error(data: Any, path: tuple[str | int, ...], reason: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(data)
    error = caught.value
    assert error.path == path
    assert reason in error.reason
    dotted = format_path(path)
    assert str(error) == (f"{dotted}: {error.reason}" if dotted else error.reason)


def test_config_error_is_a_v6alt_error() -> None:
    with pytest.raises(V6AltError):
        parse_config({"nope": 1})


@pytest.mark.parametrize(
    ("path", "text"),
    [
        ((), ""),
        (("ranges",), "ranges"),
        (("ranges", "allow", 1), "ranges.allow[1]"),
        (("secure_ranges", 0, "cidr"), "secure_ranges[0].cidr"),
    ],
)
def test_format_path(path: tuple[str | int, ...], text: str) -> None:
    assert format_path(path) == text


# --- files ----------------------------------------------------------------------


def test_load_config_reads_a_file(tmp_path: Path) -> None:
    path = tmp_path / "v6alt.yaml"
    path.write_text(FULL_YAML, encoding="utf-8")
    assert load_config(path) == parse_config(yaml.safe_load(FULL_YAML))
    assert load_config(str(path)) == load_config(path)


def test_load_config_empty_file_is_defaults(tmp_path: Path) -> None:
    path = tmp_path / "empty.yaml"
    path.write_text("# nothing set\n", encoding="utf-8")
    assert load_config(path) == Config()


def test_load_config_default_yaml(tmp_path: Path) -> None:
    path = tmp_path / "default.yaml"
    path.write_text(DEFAULT_CONFIG_YAML, encoding="utf-8")
    assert load_config(path) == Config()


def load_error(tmp_path: Path, text: str | bytes) -> ConfigError:
    path = tmp_path / "bad.yaml"
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    return caught.value


def test_load_config_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "absent.yaml"
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert caught.value.path == ()
    assert str(caught.value) == f"{path}: no such file"


def test_load_config_directory(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="is a directory"):
        load_config(tmp_path)


def test_load_config_yaml_syntax_error_has_line_number(tmp_path: Path) -> None:
    error = load_error(tmp_path, 'ranges:\n  allow: ["200::/7"\nsidecar: {}\n')
    assert error.path == ()
    assert "YAML error at line 3, column 1" in error.reason
    assert str(tmp_path / "bad.yaml") in error.reason


def test_load_config_bad_indentation(tmp_path: Path) -> None:
    error = load_error(tmp_path, "ranges:\n  cjdns: true\n   allow: []\n")
    assert error.path == ()
    assert "YAML error at line 3" in error.reason


def test_load_config_duplicate_key(tmp_path: Path) -> None:
    error = load_error(tmp_path, "ranges:\n  cjdns: true\n  cjdns: false\n")
    assert error.path == ()
    assert "duplicate key 'cjdns'" in error.reason
    assert "line 3, column 3" in error.reason


def test_load_config_top_level_not_a_mapping(tmp_path: Path) -> None:
    error = load_error(tmp_path, "- ranges\n- sidecar\n")
    assert error.path == ()
    assert error.reason == "the top level must be a mapping, got a list"


def test_load_config_not_utf8(tmp_path: Path) -> None:
    error = load_error(tmp_path, b"ranges:\n  cjdns: \xff\n")
    assert "not UTF-8 text" in error.reason


def test_load_config_schema_error_keeps_key_path(tmp_path: Path) -> None:
    error = load_error(tmp_path, "ranges:\n  allow: ['200::/129']\n")
    assert error.path == ("ranges", "allow", 0)
    assert str(error) == "ranges.allow[0]: '200::/129' is not an IPv6 network (CIDR)"


def test_every_yaml_example_in_the_docs_is_valid() -> None:
    text = DOCS.read_text(encoding="utf-8")
    blocks = [b.split("```", 1)[0] for b in text.split("```yaml\n")[1:]]
    assert len(blocks) >= 5
    for block in blocks:
        data = yaml.safe_load(block)
        if "modules" in data:
            data = data["modules"][0]["config"]
        parse_config(data)


def test_docs_error_examples_are_real() -> None:
    text = DOCS.read_text(encoding="utf-8")
    cases = [
        {"ranges": {"allow": ["200::/7", "200::/129"]}},
        {"secure_ranges": [{"cidr": "200::/8", "tls": "optional"}]},
        {"ranges": {"unsafe_allow": ["2a00::/16"]}},
    ]
    for data in cases:
        with pytest.raises(ConfigError) as caught:
            parse_config(data)
        assert f"\n{caught.value}\n" in text
