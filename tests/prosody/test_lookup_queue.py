"""v6alt_lookup_queue.lib.lua on its own, under lua5.4 (Prosody 13's Lua), no Prosody.

The burst test (test_lookup_burst.py) shows the queue inside a real Prosody;
this one pins down its rules: at most `limit` open, first come first served,
a lookup that settles at once, one that errors, done() called twice.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from v6alt.prosody_bridge import cli_prosody_module_path

LUA = shutil.which("lua5.4")
pytestmark = pytest.mark.skipif(LUA is None, reason="lua5.4 (Prosody 13's dependency) missing")

HARNESS = """
local logged = {}
module = {
    log = function (_, level, fmt, ...) logged[#logged + 1] = level .. ": " .. fmt:format(...) end;
}
local queue = dofile(arg[1]).new(2)
local started, pending = {}, {}
local function lookup(name, behaviour)
    queue:run(function (done)
        started[#started + 1] = name
        if behaviour == "at once" then done(); done(); return end
        if behaviour == "error" then error("broken " .. name) end
        pending[name] = done
    end)
end
local function show(step)
    print(step .. " started=" .. table.concat(started, ",") .. " open=" .. queue.open
        .. " queued=" .. queue:queued())
end
lookup("a"); lookup("b"); lookup("c"); lookup("d", "at once"); lookup("e", "error"); lookup("f")
show("burst")
pending.a(); pending.a()
show("a done twice")
pending.b()
show("b done")
pending.c(); pending.f()
show("all done")
print(logged[1])
"""


def test_queue_rules(tmp_path: Path) -> None:
    assert LUA is not None
    library = cli_prosody_module_path.module_directory() / "v6alt_lookup_queue.lib.lua"
    harness = tmp_path / "harness.lua"
    harness.write_text(HARNESS)
    result = subprocess.run(
        [LUA, str(harness), str(library)], capture_output=True, text=True, timeout=30, check=False
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[:4] == [
        # Two open, the rest wait in order.
        "burst started=a,b open=2 queued=4",
        # A second done() is ignored: one slot freed, c takes it.
        "a done twice started=a,b,c open=2 queued=3",
        # d settles at once and e fails to start: neither keeps a slot, f gets one.
        "b done started=a,b,c,d,e,f open=2 queued=0",
        "all done started=a,b,c,d,e,f open=0 queued=0",
    ]
    assert lines[4].startswith("error: v6alt lookup failed to start: ")
    assert lines[4].endswith("broken e")
