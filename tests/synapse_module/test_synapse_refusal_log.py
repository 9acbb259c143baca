"""A refused destination is logged once per attempt: Synapse asks the module again
for each retry of one request (an invite was logged five times), so one warning
a minute per destination and rule, the repeats at debug."""

from __future__ import annotations

import logging
import re

import pytest

pytest.importorskip("synapse.app.homeserver", reason="matrix-synapse is not installed")
from v6alt.codec import encode
from v6alt.synapse_module.outbound import DialRefusalLog

from .homeserver import Homeserver, quote

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def alice(pair: tuple[Homeserver, Homeserver]) -> str:
    return pair[0].register("alice-refusal-log")


def _warnings(hs: Homeserver, name: str, mark: int) -> list[str]:
    pattern = re.compile(rf" - WARNING - v6alt: refused to dial {re.escape(name)} ")
    return [line for line in hs.log_text()[mark:].splitlines() if pattern.search(line)]


def test_an_invite_to_a_refused_server_warns_once(
    pair: tuple[Homeserver, Homeserver], alice: str
) -> None:
    a, _ = pair
    name = encode("fd00:ab::1")  # ULA: never dialled
    status, room = a.request("POST", "/_matrix/client/v3/createRoom", {}, token=alice)
    assert status == 200
    mark = a.log_mark()
    status, _ = a.request(
        "POST",
        f"/_matrix/client/v3/rooms/{quote(room['room_id'])}/invite",
        {"user_id": f"@x:{name}"},
        token=alice,
    )
    # The invite fails only after Synapse's retries: each asked the module again.
    assert status >= 400
    repeats = re.findall(
        rf" - DEBUG - v6alt: refused to dial {re.escape(name)} .*\(again: ", a.log_text()[mark:]
    )
    assert len(repeats) >= 1  # the retries were there, and went to debug
    lines = _warnings(a, name, mark)
    assert len(lines) == 1, "\n".join(lines)
    assert "[federation client]: never-dial: ULA (fd00::/8)" in lines[0]


def test_a_profile_query_warns_once(pair: tuple[Homeserver, Homeserver], alice: str) -> None:
    a, _ = pair
    name = encode("fd00:ab::2")
    mark = a.log_mark()
    status, _ = a.request("GET", f"/_matrix/client/v3/profile/{quote('@x:' + name)}", token=alice)
    assert status >= 400
    a.wait_for_log(rf"v6alt: refused to dial {re.escape(name)} ", start=mark)
    assert len(_warnings(a, name, mark)) == 1


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_refusal_log_window(caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()
    log = DialRefusalLog(clock)
    caplog.set_level(logging.DEBUG, logger="v6alt.synapse_module")

    def warnings() -> list[str]:
        return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]

    for _ in range(5):
        log.refused("n.v6.alt", " (address ::1)", "federation client", "never-dial: loopback")
    assert warnings() == [
        "v6alt: refused to dial n.v6.alt (address ::1) [federation client]: never-dial: loopback"
    ]
    log.refused("n.v6.alt", "", "resolver", "another rule")  # another rule: its own warning
    log.refused("m.v6.alt", "", "resolver", "never-dial: loopback")  # another name: idem
    assert len(warnings()) == 3
    clock.now += DialRefusalLog.WINDOW
    log.refused("n.v6.alt", " (address ::1)", "federation client", "never-dial: loopback")
    assert warnings()[-1].endswith("never-dial: loopback (4 more since the last warning)")


def test_refusal_log_is_bounded() -> None:
    clock = Clock()
    log = DialRefusalLog(clock)
    for i in range(DialRefusalLog.MAX_KEYS * 3):
        log.refused(f"n{i}.v6.alt", "", "resolver", "rule")
    assert len(log._seen) <= DialRefusalLog.MAX_KEYS
