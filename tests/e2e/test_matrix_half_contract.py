"""The demo's Matrix half calls the homeserver starter contract of lab/demo.py as documented.

The starter here is a recording stand-in (no Synapse): it pins down what the
demo asks of ``v6alt.lab.matrix.mesh.start_homeserver`` and its users.
"""

from __future__ import annotations

from ipaddress import IPv6Address
from pathlib import Path

import pytest

from v6alt.lab import LabHost
from v6alt.lab import demo as demo_module
from v6alt.lab.demo import DemoResult, MatrixHalf

CALLS: list[str] = []


class RecordingUser:
    def __init__(self, user_id: str) -> None:
        self.user_id = user_id

    def create_room(self, invite: list[str]) -> str:
        CALLS.append(f"{self.user_id} create_room {invite}")
        return "!room:a"

    def join(self, room_id: str, timeout: float) -> None:
        CALLS.append(f"{self.user_id} join {room_id}")

    def send_text(self, room_id: str, body: str) -> None:
        CALLS.append(f"{self.user_id} send {room_id}")

    def wait_text(self, room_id: str, body: str, timeout: float) -> None:
        CALLS.append(f"{self.user_id} wait {room_id} {body}")


class RecordingHomeserver:
    def __init__(self, host: LabHost) -> None:
        self.server_name = host.name

    def register(self, localpart: str, password: str) -> RecordingUser:
        return RecordingUser(f"@{localpart}:{self.server_name}")


def _host(name: str, address: str) -> LabHost:
    return LabHost(name, f"v6e-x-{name}", IPv6Address(address), f"ygg-{name}", {},
                   Path("/nonexistent"), Path("/nonexistent"), 0)  # fmt: skip


def test_matrix_half_drives_the_starter_contract(monkeypatch: pytest.MonkeyPatch) -> None:
    def start(lab: object, host: LabHost, progress: object) -> RecordingHomeserver:
        CALLS.append(f"start {host.host}")
        return RecordingHomeserver(host)

    monkeypatch.setattr(demo_module, "find_matrix_half", lambda: MatrixHalf(start, "stand-in"))
    hosts = [_host("a", "200::1"), _host("b", "200::2")]
    lines: list[str] = []
    result = DemoResult()
    demo_module._matrix_half(lines.append, object(), hosts, result)
    alice, bob = f"@alice:{hosts[0].name}", f"@bob:{hosts[1].name}"
    assert CALLS[:2] == ["start a", "start b"]
    assert CALLS[2:5] == [
        f"{alice} create_room {[bob]}",
        f"{bob} join !room:a",
        f"{alice} send !room:a",
    ]
    assert CALLS[5].startswith(f"{bob} wait !room:a Hello {hosts[1].name}")
    assert result.matrix == {"ran": True, "room": "!room:a", "users": [alice, bob]}
    assert any(hosts[0].name in line and hosts[1].name in line for line in lines)


def test_matrix_half_skips_with_the_reason(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(
        demo_module, "find_matrix_half", lambda: MatrixHalf(None, "matrix-synapse not installed")
    )
    lines: list[str] = []
    result = DemoResult()
    demo_module._matrix_half(lines.append, object(), [], result)
    assert lines == ["[6/6] Matrix half: skipped (matrix-synapse not installed)"]
    assert result.matrix == {"ran": False, "reason": "matrix-synapse not installed"}
