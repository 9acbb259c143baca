"""`v6alt encode`/`decode`, usage, --help/--version and plugin commands, in-process."""

from __future__ import annotations

import io
import json
import re
from importlib.metadata import EntryPoint, entry_points
from importlib.metadata import version as metadata_version
from ipaddress import IPv6Address
from pathlib import Path

import pytest

import v6alt
from tests.cli_support import ADDRESSES, NAMES, codec_reason, random_addresses, run
from tests.vectors import VECTORS
from v6alt.cli import ENTRY_POINT_GROUP, build_parser
from v6alt.cli_common import Streams

# --- encode / decode ------------------------------------------------------------


def test_encode_every_vector_in_order() -> None:
    result = run("encode", *ADDRESSES)
    assert (result.code, result.err) == (0, "")
    assert result.out.splitlines() == NAMES


def test_decode_every_vector_strict() -> None:
    result = run("decode", *NAMES)
    assert (result.code, result.err) == (0, "")
    assert result.out.splitlines() == [str(IPv6Address(a)) for a in ADDRESSES]


@pytest.mark.parametrize(("address", "name"), VECTORS)
def test_single_vector_both_ways(address: str, name: str) -> None:
    assert run("encode", address).out == name + "\n"
    assert run("decode", name).out == f"{IPv6Address(address)}\n"
    assert run("decode", "--lenient", name.upper()).out == f"{IPv6Address(address)}\n"


def test_encode_accepts_brackets_and_any_spelling() -> None:
    result = run("encode", "[2001:db8::1]", "2001:0DB8:0:0:0:0:0:1")
    assert result.out == "eaaq3o-e.v6.alt\neaaq3o-e.v6.alt\n"


def test_decode_subdomains_carry_the_same_address() -> None:
    result = run("decode", "groups.fiabbgadu-e.v6.alt", "a.b.fiabbgadu-e.v6.alt")
    assert result.out == "2a00:1098:3a0::1\n2a00:1098:3a0::1\n"


# Other spellings of 2001:db8::1 (canonical eaaq3o-e): strict refuses, lenient takes.
OTHER_SPELLINGS = [
    "EAAQ3O-E.v6.alt",
    "eaaq3oaaaaaaaaaaaaaaaaaaae.v6.alt",
    "eaaq3oaaaaaaa-aaaaae.v6.alt",
    "eaaq3o-f.v6.alt",
    "eaaq3o-e.V6.ALT",
]


@pytest.mark.parametrize("spelling", OTHER_SPELLINGS)
def test_strict_decode_refuses_other_spellings_lenient_accepts(spelling: str) -> None:
    strict = run("decode", spelling)
    assert strict.code == 2 and strict.out == ""
    reason = codec_reason(v6alt.decode, spelling)
    assert strict.err == f"v6alt: {spelling}: {reason}\n"
    lenient = run("decode", "--lenient", spelling)
    assert (lenient.code, lenient.out, lenient.err) == (0, "2001:db8::1\n", "")


BAD_ADDRESSES = ["", "2001:db8::1::2", "1.2.3.4", "fe80::1%eth0", "eaaq3o-e.v6.alt", "[::1"]
BAD_NAMES = ["", "example.org", ".v6.alt", "a--b.v6.alt", "0aaq3o-e.v6.alt", "x" * 30 + ".v6.alt"]


def test_bad_addresses_are_reported_and_good_ones_printed() -> None:
    result = run("encode", "::1", *BAD_ADDRESSES, "2001:db8::1")
    assert result.code == 2
    assert result.out == "a-e.v6.alt\neaaq3o-e.v6.alt\n"
    expected = [f"v6alt: {bad}: {codec_reason(v6alt.encode, bad)}" for bad in BAD_ADDRESSES]
    assert result.err.splitlines() == expected


def test_bad_names_are_reported_and_good_ones_printed() -> None:
    result = run("decode", *BAD_NAMES, "a-e.v6.alt")
    assert result.code == 2
    assert result.out == "::1\n"
    expected = [f"v6alt: {bad}: {codec_reason(v6alt.decode, bad)}" for bad in BAD_NAMES]
    assert result.err.splitlines() == expected


def test_json_output_schema() -> None:
    result = run("encode", "--json", "2001:db8::1", "nope")
    assert result.code == 2
    assert json.loads(result.out) == [
        {"input": "2001:db8::1", "address": "2001:db8::1", "name": "eaaq3o-e.v6.alt"},
        {"input": "nope", "error": codec_reason(v6alt.encode, "nope")},
    ]
    assert result.err == f"v6alt: nope: {codec_reason(v6alt.encode, 'nope')}\n"
    decoded = run("decode", "--lenient", "--json", "EAAQ3O-E.v6.alt")
    assert decoded.code == 0
    assert json.loads(decoded.out) == [
        {"input": "EAAQ3O-E.v6.alt", "address": "2001:db8::1", "name": "eaaq3o-e.v6.alt"}
    ]


def test_json_escapes_hostile_input() -> None:
    bad = 'a"b\\c\u2028\x00'
    result = run("decode", "--json", "-", stdin=bad + "\n")
    assert json.loads(result.out) == [{"input": bad, "error": codec_reason(v6alt.decode, bad)}]


def test_json_of_empty_stdin_is_an_empty_list() -> None:
    result = run("encode", "--json", "-", stdin="\n  \n")
    assert (result.code, json.loads(result.out)) == (0, [])


def test_stdin_bulk_30000_items_both_ways() -> None:
    addresses = random_addresses(30_000)
    names = [v6alt.encode(a) for a in addresses]
    encoded = run("encode", "-", stdin="".join(f"{a}\n" for a in addresses))
    assert (encoded.code, encoded.err) == (0, "")
    assert encoded.out.splitlines() == names
    decoded = run("decode", "-", stdin=encoded.out)
    assert (decoded.code, decoded.err) == (0, "")
    assert decoded.out.splitlines() == [str(a) for a in addresses]
    as_json = json.loads(run("decode", "--json", "-", stdin=encoded.out).out)
    assert len(as_json) == 30_000
    assert as_json[123] == {"input": names[123], "address": str(addresses[123]), "name": names[123]}


def test_stdin_skips_blank_lines_strips_whitespace_reports_bad_lines() -> None:
    stdin = "\n  ::1  \r\n\n\tbogus\t\n2001:db8::1\n\n"
    result = run("encode", "-", stdin=stdin)
    assert result.code == 2
    assert result.out == "a-e.v6.alt\neaaq3o-e.v6.alt\n"
    assert result.err == f"v6alt: bogus: {codec_reason(v6alt.encode, 'bogus')}\n"


def test_stdin_mark_must_be_alone() -> None:
    result = run("decode", "a-e.v6.alt", "-")
    assert (result.code, result.out) == (2, "")
    assert result.err == "v6alt: '-' (read items from stdin) must be the only argument\n"


# --- usage, --help, --version ------------------------------------------------------

SUBCOMMANDS = [
    ["encode"],
    ["decode"],
    ["whoami"],
    ["config"],
    ["config", "check"],
    ["config", "defaults"],
]


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["frobnicate"],
        ["--bogus"],
        ["encode"],
        ["decode"],
        ["decode", "--strict", "x"],
        ["config"],
        ["config", "check"],
        ["config", "check", "a", "b"],
        ["whoami", "extra"],
    ],
)
def test_usage_errors_exit_2_with_usage_line(argv: list[str]) -> None:
    result = run(*argv)
    assert result.code == 2 and result.out == ""
    assert result.err.startswith("usage: v6alt")
    assert result.err.rstrip("\n").splitlines()[-1].startswith("v6alt")


@pytest.mark.parametrize("argv", [[], *SUBCOMMANDS])
def test_help_everywhere(argv: list[str]) -> None:
    result = run(*argv, "--help")
    assert (result.code, result.err) == (0, "")
    assert result.out.startswith("usage: " + " ".join(["v6alt", *argv]))


@pytest.mark.parametrize("argv", [[], *SUBCOMMANDS])
def test_version_everywhere(argv: list[str]) -> None:
    result = run(*argv, "--version")
    assert (result.code, result.out) == (0, f"v6alt {v6alt.__version__}\n")


def test_the_distribution_version_is_the_package_version() -> None:
    # pyproject.toml reads it from v6alt.__version__: one place.
    assert metadata_version("v6alt") == v6alt.__version__


def test_top_level_help_lists_every_core_command() -> None:
    out = run("--help").out
    for command in ("encode", "decode", "whoami", "config"):
        assert f"    {command} " in out


# --- plugin commands ----------------------------------------------------------------

PLUGIN_SOURCE = """
from v6alt.cli_common import add_command


def register_hello(subparsers):
    parser = add_command(subparsers, "hello", summary="say hello", description="Hello.",
                         handler=_run)
    parser.add_argument("who")


def _run(args, streams):
    streams.stdout.write(f"hello {args.who}\\n")
    return 0
"""


def _entry_point(value: str) -> EntryPoint:
    return EntryPoint(name=value.partition(":")[0], value=value, group=ENTRY_POINT_GROUP)


def test_plugin_commands_load_from_entry_points(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "v6cli_plugin_ok.py").write_text(PLUGIN_SOURCE)
    (tmp_path / "v6cli_plugin_broken.py").write_text("import v6cli_not_there\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    parser = build_parser(
        plugins=[
            _entry_point("v6cli_plugin_ok:register_hello"),
            _entry_point("v6cli_absent:register"),
        ]
    )
    args = parser.parse_args(["hello", "mesh"])
    out = io.StringIO()
    assert args.handler(args, Streams(io.StringIO(), out, io.StringIO())) == 0
    assert out.getvalue() == "hello mesh\n"
    with pytest.raises(ModuleNotFoundError, match="v6cli_not_there"):
        build_parser(plugins=[_entry_point("v6cli_plugin_broken:register")])


def test_installed_commands_are_entry_points_listed_after_the_core_by_name() -> None:
    installed = {ep.name for ep in entry_points(group=ENTRY_POINT_GROUP)}
    assert installed == {"sidecar", "prosody-module-path", "lab", "demo", "check", "docker-setup"}
    out = run("--help").out
    listed = [line.split()[0] for line in out.splitlines() if re.match(r" {4}\S", line)]
    assert listed == ["encode", "decode", "whoami", "config", "pins", *sorted(installed)]
