"""Bad input anywhere in the CLI and the config readers: one line naming what is
wrong, exit 2, never a traceback, never an echo longer than a line; stdin is
streamed with a bounded line length."""

from __future__ import annotations

import functools
import io
import json
import os
import subprocess
import sys
from ipaddress import IPv6Address
from pathlib import Path

import pytest

from tests.cli_support import run
from v6alt.cli_codec import MAX_ITEM_LENGTH, register_decode, register_encode
from v6alt.cli_common import Registrar
from v6alt.cli_config import register_config
from v6alt.cli_whoami import register_whoami
from v6alt.config import ConfigError, load_config
from v6alt.errors import EXCERPT_LIMIT, excerpt
from v6alt.hostinfo import survey
from v6alt.ipranges import NEVER_DIAL_RANGES, never_dial_rule
from v6alt.policy import Policy
from v6alt.yaml_file import MAX_YAML_BYTES, MAX_YAML_DEPTH, MAX_YAML_VALUES, read_yaml_file

# --- hostile YAML files ------------------------------------------------------------


def _alias_bomb(levels: int = 9, width: int = 9) -> str:
    lines = ['l0: &l0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for level in range(1, levels + 1):
        refs = ", ".join([f"*l{level - 1}"] * width)
        lines.append(f"l{level}: &l{level} [{refs}]")
    lines.append(f"ranges: {{allow: *l{levels}}}")
    return "\n".join(lines) + "\n"


HOSTILE_FILES: dict[str, tuple[bytes, str]] = {
    "deep-flow": (b"[" * 5000, f"nested deeper than {MAX_YAML_DEPTH} levels"),
    "deep-block": (
        "".join(f"{'  ' * i}k{i}:\n" for i in range(200)).encode(),
        f"nested deeper than {MAX_YAML_DEPTH} levels",
    ),
    "alias-bomb": (_alias_bomb().encode(), f"more than {MAX_YAML_VALUES:,} values"),
    "recursive-alias": (b"ranges: &a {allow: *a}\n", "an alias refers to a node that contains it"),
    "flat-huge": (
        b"x: [" + b",".join([b"1"] * (MAX_YAML_VALUES + 10)) + b"]\n",
        f"more than {MAX_YAML_VALUES:,} values",
    ),
    "too-large": (b"# " + b"x" * MAX_YAML_BYTES + b"\n", "larger than 1 MiB"),
    "binary": (b"\x7fELF\x02\x01\x01\x00\x00\x00", "binary content (a NUL byte at byte 7)"),
    "latin-1": (b"ranges: {cjdns: caf\xe9}\n", "not UTF-8 text (byte 19)"),
    "syntax": (b"ranges: [\n", "YAML error at line 2"),
    "duplicate-key": (b"ranges: {}\nranges: {}\n", "duplicate key 'ranges'"),
    "huge-integer": (b"ranges: {cjdns: " + b"9" * 5000 + b"}\n", "a YAML value cannot be read"),
    "bad-date": (b"ranges: {cjdns: 2001-13-01}\n", "month must be in 1..12"),
}


def _write(tmp_path: Path, name: str, content: bytes) -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_bytes(content)
    return path


def _one_line(text: str, limit: int = 400) -> str:
    assert text.endswith("\n") and text.count("\n") == 1, text[:2000]
    assert len(text) < limit, text[:2000]
    assert "Traceback" not in text
    return text


@pytest.mark.parametrize("case", sorted(HOSTILE_FILES))
def test_read_yaml_file_refuses_hostile_files_with_one_reason(tmp_path: Path, case: str) -> None:
    content, reason = HOSTILE_FILES[case]
    path = _write(tmp_path, case, content)
    with pytest.raises(ConfigError) as info:
        read_yaml_file(path)
    message = str(info.value)
    assert message.startswith(f"{path}: ") and reason in message, message
    assert "\n" not in message and len(message) < 300


@pytest.mark.parametrize("case", sorted(HOSTILE_FILES))
def test_config_check_hostile_file_one_line_exit_2(tmp_path: Path, case: str) -> None:
    content, reason = HOSTILE_FILES[case]
    path = _write(tmp_path, case, content)
    result = run("config", "check", str(path))
    assert result.code == 2 and result.out == ""
    assert reason in _one_line(result.err)
    assert result.err.startswith(f"v6alt: config: {path}: ")


def test_config_check_json_of_a_hostile_file(tmp_path: Path) -> None:
    path = _write(tmp_path, "deep", b"[" * 5000)
    result = run("config", "check", "--json", str(path))
    assert result.code == 2
    answer = json.loads(result.out)
    assert answer["valid"] is False and answer["error"]["path"] == []
    assert "nested deeper than" in answer["error"]["reason"]


def test_a_directory_and_a_missing_file(tmp_path: Path) -> None:
    assert "is a directory" in _one_line(run("config", "check", str(tmp_path)).err)
    assert "no such file" in _one_line(run("config", "check", str(tmp_path / "nope")).err)


def test_an_unreadable_file(tmp_path: Path) -> None:
    # Root reads a file of mode 000: as root, the read is made with another
    # effective uid (the real uid stays root, so it comes back), from a folder
    # that uid may enter.
    tmp_path.chmod(0o755)
    path = _write(tmp_path, "secret", b"{}\n")
    path.chmod(0)
    run("config", "check", str(tmp_path / "missing.yaml"))  # imports done before the switch
    was_root = os.geteuid() == 0
    if was_root:
        os.setegid(65534)
        os.seteuid(65534)
    try:
        result = run("config", "check", str(path))
    finally:
        if was_root:
            os.seteuid(0)
            os.setegid(0)
    assert result.code == 2
    assert "cannot read: Permission denied" in _one_line(result.err)


def test_nesting_up_to_the_bound_is_read(tmp_path: Path) -> None:
    depth = MAX_YAML_DEPTH - 1
    path = _write(tmp_path, "nested", b"x: " + b"[" * depth + b"]" * depth + b"\n")
    assert read_yaml_file(path) is not None


def test_homeserver_yaml_may_repeat_keys_as_synapse_allows(tmp_path: Path) -> None:
    path = _write(tmp_path, "hs", b"server_name: a\nserver_name: b\n")
    assert read_yaml_file(path, unique_keys=False) == {"server_name": "b"}


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        ('ranges: {allow: ["' + "2" * 100_000 + '"]}\n', "is not an IPv6 network"),
        ("ranges: {cjdns: " + "y" * 100_000 + "}\n", "expected true or false"),
        ("ranges: {cjdns: " + "9" * 4000 + "}\n", "expected true or false, got int"),
        ("sidecar: {dns_listen: '[::1]:" + "5" * 100_000 + "'}\n", "out of range"),
        ("ranges: {" + "k" * 500 + ": 1}\n", "unknown key"),
    ],
)
def test_config_errors_quote_a_bounded_excerpt_of_long_values(
    tmp_path: Path, content: str, reason: str
) -> None:
    path = _write(tmp_path, "long", content.encode())
    result = run("config", "check", str(path))
    assert result.code == 2
    assert reason in _one_line(result.err)


def test_excerpt_bounds_the_quote() -> None:
    assert excerpt("short") == "'short'"
    long = excerpt("x" * 10_000)
    assert long.startswith("'" + "x" * EXCERPT_LIMIT + "'...") and "10,000 characters" in long


# The other readers of config files: the sidecar, check matrix --config, check
# local --homeserver-config/--sidecar-config. Real processes: one line on stderr.


def _v6alt(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "v6alt", *argv],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"},
    )


@pytest.mark.parametrize("case", ["deep-flow", "alias-bomb", "binary"])
@pytest.mark.parametrize(
    "argv",
    [
        ["sidecar", "--config"],
        ["check", "matrix", "ai-e.v6.alt", "--config"],
        ["check", "local", "--homeserver-config"],
        ["check", "local", "--sidecar-config"],
    ],
    ids=["sidecar", "check-matrix", "check-local-homeserver", "check-local-sidecar"],
)
def test_every_config_reader_refuses_with_one_line(
    tmp_path: Path, argv: list[str], case: str
) -> None:
    pytest.importorskip("twisted")
    content, reason = HOSTILE_FILES[case]
    path = _write(tmp_path, case, content)
    done = _v6alt(*argv, str(path))
    assert done.returncode == 2, done.stderr[-3000:]
    assert reason in _one_line(done.stderr)
    assert str(path) in done.stderr


def test_load_config_of_a_valid_file(tmp_path: Path) -> None:
    path = _write(tmp_path, "ok", b"ranges: {cjdns: true}\n")
    assert load_config(path).ranges.cjdns is True


# --- encode/decode: bounded lines, streamed -----------------------------------------


def test_an_overlong_line_is_one_bad_item_quoted_by_its_start() -> None:
    long = "x" * (MAX_ITEM_LENGTH * 50)
    result = run("encode", "-", stdin=f"2001:db8::1\n{long}\n::1\n")
    assert result.code == 2
    assert result.out == "eaaq3o-e.v6.alt\na-e.v6.alt\n"
    line = _one_line(result.err, limit=300)
    assert line.startswith("v6alt: '" + "x" * EXCERPT_LIMIT + "'...: ")
    assert f"a line of {len(long):,} characters" in line


def test_an_overlong_argument_and_json() -> None:
    long = "2001:db8::1" + " " * 10 + "y" * 5000
    result = run("decode", "--json", long)
    assert result.code == 2
    _one_line(result.err, limit=300)
    (item,) = json.loads(result.out)
    assert len(item["input"]) < 100 and "5,021 characters" in item["error"]


def test_the_longest_item_still_converts_and_the_next_line_is_read() -> None:
    padded = " " * (MAX_ITEM_LENGTH - len("::1") - 1) + "::1"
    result = run("encode", "-", stdin=f"{padded}\n::1")
    assert (result.code, result.out) == (0, "a-e.v6.alt\na-e.v6.alt\n")


def test_an_overlong_last_line_without_newline() -> None:
    result = run("encode", "-", stdin="::1\n" + "z" * (MAX_ITEM_LENGTH + 1))
    assert result.code == 2 and result.out == "a-e.v6.alt\n"
    assert f"a line of {MAX_ITEM_LENGTH + 1:,} characters" in _one_line(result.err)


def test_a_50_mb_line_in_bounded_memory_and_output(tmp_path: Path) -> None:
    big = tmp_path / "big.txt"
    with big.open("w") as out:
        out.write("2001:db8::1\n")
        chunk = "x" * (1 << 20)
        for _ in range(50):
            out.write(chunk)
        out.write("\n::1\n")
    script = (
        "import sys\n"
        "from v6alt.cli import main\n"
        "code = main(['encode', '-'])\n"
        "sys.stdout.flush()\n"
        "# VmHWM: the peak RSS of this program (ru_maxrss would count the forking parent)\n"
        "status = open('/proc/self/status').read().split('VmHWM:')[1].split()[0]\n"
        "print(f'maxrss={status}', file=sys.stderr)\n"
        "sys.exit(code)\n"
    )
    with big.open("rb") as stdin:
        done = subprocess.run(
            [sys.executable, "-c", script], stdin=stdin, capture_output=True, timeout=120
        )
    assert done.returncode == 2
    assert done.stdout == b"eaaq3o-e.v6.alt\na-e.v6.alt\n"
    error, rss = done.stderr.decode().splitlines()
    assert len(error) < 300 and "52,428,800 characters" in error
    assert int(rss.removeprefix("maxrss=")) < 64 * 1024  # KiB: the interpreter and a bit


# --- decode: a port is not part of a name --------------------------------------------


@pytest.mark.parametrize("argv", [["x.v6.alt:8448"], ["--lenient", "EAAQ3O-E.V6.ALT:8448"]])
def test_decode_names_the_port(argv: list[str]) -> None:
    result = run("decode", *argv)
    assert result.code == 2
    line = _one_line(result.err)
    assert "(':8448'), which is not part of a host name; give the name alone" in line
    assert "not under .v6.alt" not in line


def test_decode_of_a_name_with_port_in_bulk() -> None:
    result = run("decode", "-", stdin="eaaq3o-e.v6.alt:8448\neaaq3o-e.v6.alt\n")
    assert result.code == 2 and result.out == "2001:db8::1\n"
    assert "give the name alone: 'eaaq3o-e.v6.alt'" in result.err


# --- whoami and a never-dial source address ---------------------------------------------

# A host whose only route towards 200::/7 goes out with a ULA source.
IF_INET6_ULA = """\
fd000000000000000000000000000002 04 40 00 80     eth0
02001234000000000000000000000001 03 07 00 80       v0
00000000000000000000000000000001 01 80 10 80       lo
"""


def _route(source: str, dev: str = "eth0") -> str:
    return json.dumps([{"dst": "x", "dev": dev, "prefsrc": source}])


def _whoami(routes: dict[str, str]) -> list[Registrar]:
    def route_get(destination: IPv6Address) -> str:
        return routes[str(destination)]

    whoami = functools.partial(
        register_whoami, read_addresses=lambda: IF_INET6_ULA, route_get=route_get
    )
    return [register_encode, register_decode, whoami, register_config]


def test_whoami_flags_a_never_dial_source_with_the_rule() -> None:
    commands = _whoami({"200::1": _route("fd00::2"), "2000::1": _route("fd00::2")})
    result = run("whoami", commands=commands)
    assert result.code == 1
    warnings = [line for line in result.out.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 2
    assert (
        "fd00::2 as source, an address peers never dial (never-dial: ULA (fd00::/8))"
        in (warnings[0])
    )
    assert "ip -6 route change 200::/7 dev v0 src 200:1234::1" in warnings[0]
    data = json.loads(run("whoami", "--json", commands=commands).out)
    assert data["ok"] is False
    assert [s["never_dial"] for s in data["sources"]] == ["never-dial: ULA (fd00::/8)"] * 2


def test_never_dial_rule_matches_the_policy_for_every_range() -> None:
    default = Policy()
    for special in NEVER_DIAL_RANGES:
        address = special.network.network_address + (0 if special.network.prefixlen == 128 else 1)
        decision = default.decide(address)
        expected = None if decision.allowed else decision.rule
        assert never_dial_rule(address) == expected, special
    assert never_dial_rule(IPv6Address("200::1")) is None


def test_survey_marks_the_source_check() -> None:
    report = survey(IF_INET6_ULA, lambda d: _route("fd00::2"), [IPv6Address("200::1")])
    (check,) = report.sources
    assert check.never_dial == "never-dial: ULA (fd00::/8)" and not report.ok


def test_a_global_source_is_not_flagged() -> None:
    report = survey(IF_INET6_ULA, lambda d: _route("200:1234::1", "v0"), None)
    assert all(c.never_dial is None for c in report.sources)


# The stdin used by the in-process runner is a StringIO; readline(size) there
# behaves as on a real text stream.
def test_stringio_readline_bound() -> None:
    assert io.StringIO("abcdef\n").readline(3) == "abc"
