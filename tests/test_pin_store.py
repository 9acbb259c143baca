"""The pin file (v6alt.pin_store): durable, atomic, and safe with concurrent writers.

The concurrency tests run real processes (as Synapse workers are), each
writing its own pins into one file at the same time; none may be lost and
the file must parse after every write.
"""

from __future__ import annotations

import json
import multiprocessing
import os
from pathlib import Path

import pytest

from v6alt.pin_store import PinStore, decide
from v6alt.pins import Pin, PinFileError, PinStatus, check_tls

NAME = "fiabbgadu-e.v6.alt"


def pin(name: str, spki: str = "a" * 64) -> Pin:
    return Pin(name, "xmpp", "2a00::1", spki, {}, 1, 1)


def test_missing_file_is_empty_and_created_on_first_write(tmp_path: Path) -> None:
    store = PinStore(tmp_path / "pins.json")
    assert store.all() == {} and store.get(NAME) is None
    store.update(NAME, lambda current: pin(NAME))
    assert (tmp_path / "pins.json").exists()
    assert PinStore(tmp_path / "pins.json").get(NAME) == pin(NAME)
    assert (tmp_path / "pins.json").stat().st_mode & 0o777 == 0o600


def test_update_returning_none_writes_nothing(tmp_path: Path) -> None:
    store = PinStore(tmp_path / "pins.json")
    assert store.update(NAME, lambda current: None) is None
    assert not (tmp_path / "pins.json").exists()


def test_forget(tmp_path: Path) -> None:
    store = PinStore(tmp_path / "pins.json")
    store.update(NAME, lambda current: pin(NAME))
    assert store.forget(NAME) == pin(NAME)
    assert store.forget(NAME) is None
    assert store.get(NAME) is None


def test_a_reader_sees_another_processes_change(tmp_path: Path) -> None:
    reader = PinStore(tmp_path / "pins.json")
    assert reader.get(NAME) is None
    PinStore(tmp_path / "pins.json").update(NAME, lambda current: pin(NAME))
    assert reader.get(NAME) == pin(NAME)
    PinStore(tmp_path / "pins.json").forget(NAME)
    assert reader.get(NAME) is None


def test_broken_file_raises_and_is_not_overwritten(tmp_path: Path) -> None:
    path = tmp_path / "pins.json"
    path.write_text("{broken")
    store = PinStore(path)
    with pytest.raises(PinFileError, match="not JSON"):
        store.get(NAME)
    with pytest.raises(PinFileError):
        store.update(NAME, lambda current: pin(NAME))
    assert path.read_text() == "{broken"


def test_unwritable_directory_raises(tmp_path: Path) -> None:
    store = PinStore(tmp_path / "missing" / "pins.json")
    with pytest.raises(PinFileError):
        store.update(NAME, lambda current: pin(NAME))


def test_no_temporary_files_are_left(tmp_path: Path) -> None:
    store = PinStore(tmp_path / "pins.json")
    for i in range(5):
        store.update(f"n{i}.v6.alt", lambda current, i=i: pin(f"n{i}.v6.alt"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pins.json", "pins.json.lock"]


def judge(spki: str):  # type: ignore[no-untyped-def]
    def run(current: Pin | None):  # type: ignore[no-untyped-def]
        return check_tls(
            current,
            name=NAME,
            protocol="xmpp",
            address="2a00::1",
            spki_sha256=spki,
            mode="enforce",
            now_ms=5,
            accept_hint="forget",
        )

    return run


def test_decide_judges_again_under_the_lock(tmp_path: Path) -> None:
    # Process A read "no pin" and is about to pin its key; meanwhile process B
    # pinned another key. A must not overwrite B's pin: it judges again.
    a = PinStore(tmp_path / "pins.json")
    assert a.get(NAME) is None  # A's cached view: empty
    b = PinStore(tmp_path / "pins.json")
    assert decide(b, NAME, judge("b" * 64)).status is PinStatus.NEW
    late = decide(a, NAME, judge("a" * 64))
    assert (late.status, late.accept) == (PinStatus.MISMATCH, False)
    assert PinStore(tmp_path / "pins.json").get(NAME).spki_sha256 == "b" * 64  # type: ignore[union-attr]


def _writer(path: str, worker: int, count: int) -> None:
    store = PinStore(path)
    for i in range(count):
        name = f"w{worker}-{i}.v6.alt"
        store.update(name, lambda current, name=name: pin(name, f"{worker:02x}" * 32))
        # every write leaves a whole file
        json.loads(Path(path).read_text())


def test_concurrent_writers_lose_no_pin(tmp_path: Path) -> None:
    path = str(tmp_path / "pins.json")
    context = multiprocessing.get_context("fork")
    workers = [context.Process(target=_writer, args=(path, w, 40)) for w in range(6)]
    for process in workers:
        process.start()
    for process in workers:
        process.join(120)
        assert process.exitcode == 0
    pins = PinStore(path).all()
    assert len(pins) == 6 * 40
    assert all(p.spki_sha256 == f"{int(n[1:].split('-')[0]):02x}" * 32 for n, p in pins.items())


def _first_contact(path: str, spki: str, results: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    check = decide(PinStore(path), NAME, judge(spki))
    results.put((spki, check.status.value))


def test_concurrent_first_contacts_pin_exactly_one_key(tmp_path: Path) -> None:
    path = str(tmp_path / "pins.json")
    context = multiprocessing.get_context("fork")
    results = context.Queue()
    spkis = [f"{i:02x}" * 32 for i in range(8)]
    workers = [context.Process(target=_first_contact, args=(path, s, results)) for s in spkis]
    for process in workers:
        process.start()
    for process in workers:
        process.join(60)
        assert process.exitcode == 0
    outcomes = [results.get(timeout=5) for _ in spkis]
    new = [spki for spki, status in outcomes if status == "new"]
    assert len(new) == 1
    assert all(status == "mismatch" for spki, status in outcomes if spki != new[0])
    assert PinStore(path).get(NAME).spki_sha256 == new[0]  # type: ignore[union-attr]


def test_lock_file_is_separate_and_file_replaced_atomically(tmp_path: Path) -> None:
    path = tmp_path / "pins.json"
    store = PinStore(path)
    store.update(NAME, lambda current: pin(NAME))
    inode = os.stat(path).st_ino
    store.update("x.v6.alt", lambda current: pin("x.v6.alt"))
    assert os.stat(path).st_ino != inode  # replaced, not rewritten in place
