"""Service records in the lab's state file: round trip, and stopping one kind only."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from v6alt.lab.errors import LabStateError
from v6alt.lab.state import LabState, ServiceRecord, load_state
from v6alt.lab.teardown import stop_services
from v6alt.lab.xmpp.services import XMPP_KINDS


def _state(run_dir: Path) -> LabState:
    state = LabState(prefix="v6e-x-", topology="chain", nodes=1, run_dir=str(run_dir),
                     yggdrasil="/usr/sbin/yggdrasil")  # fmt: skip
    state.services = [
        ServiceRecord(host="a", kind="sidecar", marker="/x/sidecar.yaml", tree=str(run_dir / "s")),
        ServiceRecord(host="a", kind="prosody", marker="/x/prosody.cfg.lua"),
        ServiceRecord(host="a", kind="synapse", marker="/x/homeserver.yaml"),
    ]
    return state


def test_services_survive_a_round_trip_through_the_state_file(tmp_path: Path) -> None:
    state = _state(tmp_path)
    state.save(tmp_path / "state.json")
    loaded = load_state(tmp_path / "state.json")
    assert loaded is not None and loaded.services == state.services


def test_a_damaged_service_record_is_refused(tmp_path: Path) -> None:
    data = json.loads(_state(tmp_path).to_json())
    data["services"][0]["pid"] = "12"
    (tmp_path / "state.json").write_text(json.dumps(data))
    with pytest.raises(LabStateError, match="pid: '12' has the wrong type"):
        load_state(tmp_path / "state.json")


def test_stopping_the_xmpp_services_leaves_the_others_recorded(tmp_path: Path) -> None:
    state = _state(tmp_path)
    tree = tmp_path / "s"
    (tree / "data").mkdir(parents=True)
    (tree / "data" / "accounts.dat").write_text("made by the service")
    report = stop_services(state, tmp_path / "state.json", lambda _: None, XMPP_KINDS)
    assert [s.kind for s in state.services] == ["synapse"]
    assert not tree.exists() and f"{tree}/" in report.removed_files
    saved = load_state(tmp_path / "state.json")
    assert saved is not None and [s.kind for s in saved.services] == ["synapse"]


def test_a_tree_outside_the_run_directory_is_never_removed(tmp_path: Path) -> None:
    run_dir, outside = tmp_path / "run", tmp_path / "elsewhere"
    run_dir.mkdir()
    outside.mkdir()
    state = _state(run_dir)
    state.services[0].tree = str(outside)
    report = stop_services(state, run_dir / "state.json", lambda _: None, XMPP_KINDS)
    assert outside.is_dir()
    assert any(str(outside) in item for item in report.left_alone)
