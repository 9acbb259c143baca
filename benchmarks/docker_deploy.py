"""Docker deployment: image sizes, and the mesh stack's cold start to the first
federated message, next to the same on the plain venv install.

Run (root; Debian groups docker, packaging and mesh; matrix-synapse in this
interpreter for the venv side):

    python benchmarks/docker_deploy.py [--runs 3] [--json] [--write-readme]

- **image sizes**: every image built from docker/ (on the local base image
  and the stand-in for the official Synapse image, as tests/docker builds
  them), and the v6alt layer of v6alt-synapse (its size minus its base's).
- **docker, cold**: two docker/mesh/compose.yaml stacks on one IPv6 underlay,
  from `docker-compose up` of the first (images built, containers not
  created) until alice's first message is in bob's timeline on the other
  stack: `up` of both stacks, until both homeservers answer /health, until
  the first message (register, room, invite, join over federation, message).
- **venv, cold**: the same on the venv install, processes without
  containers: two lab hosts (network namespaces, real Yggdrasil), Synapse
  with the module from this interpreter's environment
  (``v6alt.lab.matrix.mesh``), the same steps. systemd is not in the loop:
  the machines this runs on have no systemd as PID 1; the unit only adds
  systemd's own start-up of one process.

Images are built once (not timed in the cold start) and removed at the end,
with every container, network and volume; the cached base image stays.
``--write-readme`` replaces the "Docker deployment" section of benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import report

from v6alt.lab import Lab
from v6alt.lab.docker.engine import Engine
from v6alt.lab.docker.images import ImageSet, ProjectImages, build_project_images
from v6alt.lab.docker.matrix import TcpClientApi
from v6alt.lab.docker.stacks import Network, mesh_stack, server_name
from v6alt.lab.matrix.client import MatrixUser, register_user, wait_healthy
from v6alt.lab.matrix.mesh import start_homeservers

HEADING = "## Docker deployment"
REPO = Path(__file__).resolve().parents[1]
SYNAPSE_VERSION = "1.163.2"
SECRET = "v6alt-docker-bench"


def _first_message(alice: MatrixUser, bob: MatrixUser) -> None:
    room = alice.create_room(invite=[bob.user_id])
    bob.join(room, timeout=180)
    alice.send_text(room, "first a->b")
    bob.wait_text(room, "first a->b", timeout=180)


def docker_cold(images: ProjectImages) -> dict[str, float]:
    suffix = secrets.token_hex(2)
    underlay = Network(images.set.engine, f"v6alt-bench-{suffix}", f"fd42:6a17:{suffix}::/64")
    underlay.create()
    compose = REPO / "docker" / "mesh" / "compose.yaml"
    first = mesh_stack(compose, images, underlay, SECRET)
    second = None
    try:
        started = time.monotonic()
        first.up()
        peer = first.address("yggdrasil", underlay.name)
        second = mesh_stack(compose, images, underlay, SECRET, f"tcp://[{peer}]:9001")
        second.up()
        up = time.monotonic()
        apis = []
        for stack in (first, second):
            stack.wait_exited("setup", 180)
            api = TcpClientApi(
                stack.address("yggdrasil", underlay.name), 8008, server_name(stack.logs("setup"))
            )
            running: Callable[[], bool] = lambda s=stack: s.state("synapse").get("Running") is True  # noqa: E731
            if not wait_healthy(api, running, time.monotonic() + 300):
                raise RuntimeError(stack.logs("synapse"))
            apis.append(api)
        healthy = time.monotonic()
        alice = register_user(apis[0], SECRET, "alice", "pw-alice")
        bob = register_user(apis[1], SECRET, "bob", "pw-bob")
        _first_message(alice, bob)
        done = time.monotonic()
    finally:
        for stack in (first, second):
            if stack is not None:
                stack.down()
        underlay.remove()
    return {"up": up - started, "healthy": healthy - started, "first": done - started}


def venv_cold() -> dict[str, float]:
    run = secrets.token_hex(2)
    lab = Lab(run_dir=f"/run/v6alt-dockerbench-{run}", prefix=f"v6d-{run}-")
    try:
        started = time.monotonic()
        hosts = lab.up(nodes=2)
        up = time.monotonic()
        a, b = start_homeservers(lab, hosts, lambda line: None)
        healthy = time.monotonic()
        _first_message(a.register("alice", "pw-alice"), b.register("bob", "pw-bob"))
        done = time.monotonic()
    finally:
        lab.down()
    return {"up": up - started, "healthy": healthy - started, "first": done - started}


def _mb(size: int) -> str:
    return f"{size / 1e6:.1f}"


def image_table(images: ProjectImages) -> list[str]:
    size = images.set.size
    rows = [
        ("v6alt-test/debian:bookworm (debootstrap minbase + python3, the local base)", images.base),
        ("stand-in for matrixdotorg/synapse (base + Synapse by pip)", images.standin),
        ("v6alt-synapse (the stand-in + the v6alt module)", images.synapse),
        ("v6alt (sidecar, checker, setup; venv in /opt/v6alt)", images.v6alt),
        ("v6alt-yggdrasil (the v6alt image + yggdrasil)", images.yggdrasil),
        ("v6alt-prosody (Prosody 13 + mod_v6alt's rock)", images.prosody),
    ]
    lines = ["| image | size, MB |", "|---|---:|"]
    lines += [f"| {label} | {_mb(size(name))} |" for label, name in rows]
    layer = size(images.synapse) - size(images.standin)
    lines.append(f"| **the module's layer on the Synapse image** | **{layer / 1e6:.2f}** |")
    return lines


def cold_table(docker: list[dict[str, float]], venv: list[dict[str, float]]) -> list[str]:
    lines = [
        "| cold start, seconds | docker: mesh stacks, median (min-max) "
        "| venv: lab hosts, median (min-max) |",
        "|---|---:|---:|",
    ]
    labels = {
        "up": "`up` of both (containers / namespaces + Yggdrasil nodes)",
        "healthy": "both homeservers answer /health",
        "first": "first message a -> b seen on b",
    }
    for key, label in labels.items():
        lines.append(
            f"| {label} | {report.spread(r[key] for r in docker)} | "
            f"{report.spread(r[key] for r in venv)} |"
        )
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--write-readme", action="store_true")
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("docker_deploy.py: needs root", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="v6alt-dockerbench-") as tmp:
        engine = Engine(Path(tmp) / "dockerd")
        engine.start()
        image_set = ImageSet(engine, f"bench-{secrets.token_hex(3)}")
        try:
            built = time.monotonic()
            images = build_project_images(
                image_set, REPO, REPO / "tests" / "docker" / "standin", Path(tmp), SYNAPSE_VERSION
            )
            build_seconds = time.monotonic() - built
            sizes = image_table(images)
            docker = [docker_cold(images) for _ in range(args.runs)]
        finally:
            image_set.remove()
            engine.close()
    venv = [venv_cold() for _ in range(args.runs)]
    result: dict[str, Any] = {
        "docker": docker,
        "venv": venv,
        "build_seconds": build_seconds,
        "image_build_seconds": image_set.seconds,
    }
    if args.json:
        print(json.dumps(result, indent=2))
    body = "\n".join(
        [
            "`sudo python benchmarks/docker_deploy.py --runs 3 --write-readme` (root; Debian",
            "groups docker, packaging, mesh; matrix-synapse in the same venv as v6alt).",
            "Images as tests/docker builds them: on a local debootstrap base and a",
            "stand-in for the official Synapse image (no registry here), so the sizes",
            "of the bases are not the official images'; the module's layer is what",
            "`docker/synapse/Dockerfile` adds to any Synapse image. Cold start: from",
            "nothing running (images built) to alice's first message in bob's timeline",
            "on the other server, both servers fresh; docker: two docker/mesh stacks",
            "peering over an IPv6 underlay network; venv: two lab hosts (namespaces,",
            "real Yggdrasil) with Synapse + the module run from a venv, as the systemd",
            "unit would run it (no systemd as PID 1 on this machine).",
            "",
            report.machine_line(f"Synapse {SYNAPSE_VERSION}, docker.io 20.10"),
            "",
            *sizes,
            "",
            *cold_table(docker, venv),
            "",
            f"Building every image once took {build_seconds:.0f} s "
            f"(base image: {images.base_seconds:.0f} s, 0 when cached); per image: "
            + ", ".join(f"{k} {v:.0f} s" for k, v in image_set.seconds.items())
            + ".",
            "",
        ]
    )
    if args.write_readme:
        report.write_section(HEADING, body)
    print(body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
