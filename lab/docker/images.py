"""The images the container tests run, all made on this machine.

- the **base image**, a Debian rootfs from ``debootstrap --variant=minbase``
  imported with ``docker import``: no registry needed. debootstrap fetches
  from the mirror the host's apt sources use (:func:`host_debian_mirror`),
  and the images built on it take their backports from there too. It is
  the one image kept between runs (:data:`BASE_IMAGE`, labelled with what
  it was made from; ``docker image rm v6alt-test/debian:bookworm`` removes
  it), as debootstrap takes minutes;
- a **stand-in for the official Synapse image**, built from the base with
  pip, with the official image's layout and entrypoint (tests/docker/standin);
- the project's images, built from docker/ exactly as docs/docker.md says,
  with the base and the stand-in as build arguments.

:class:`ImageSet` builds the run's images under one tag and removes them
(and the stages they left behind) in :meth:`ImageSet.remove`.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from .engine import DEBOOTSTRAP, DockerError, Engine, run

__all__ = [
    "BASE_IMAGE",
    "BOOKWORM",
    "TRIXIE",
    "BaseSpec",
    "ImageSet",
    "ProjectImages",
    "base_image",
    "build_project_images",
    "host_debian_mirror",
    "wheelhouse",
]

BASE_LABEL: Final = "org.v6alt.test.base"
TEST_LABEL: Final = "org.v6alt.test.run"
OS_RELEASE: Final = Path("/etc/os-release")


@dataclass(frozen=True)
class BaseSpec:
    """A Debian release as a local base image: ``debootstrap --variant=minbase``
    with ``packages`` included, imported as ``v6alt-test/debian:<suite>``."""

    suite: str
    packages: tuple[str, ...]

    @property
    def image(self) -> str:
        return f"v6alt-test/debian:{self.suite}"

    def key(self) -> str:
        return hashlib.sha256(f"{self.suite} {' '.join(self.packages)}".encode()).hexdigest()[:16]


# Debian 12, the base of every image the tests build: the v6alt image's Python
# and iproute2 (so its build needs no apt), certificates and openssl.
BOOKWORM: Final = BaseSpec(
    "bookworm", ("python3", "python3-venv", "ca-certificates", "openssl", "iproute2")
)
# Debian 13, for the packaged venv install there: systemd for systemd-analyze,
# procps for the unit's /bin/kill (in every standard install, not in minbase).
TRIXIE: Final = BaseSpec(
    "trixie", ("python3", "python3-venv", "ca-certificates", "systemd", "procps")
)
BASE_IMAGE: Final = BOOKWORM.image


def _os_release_codename(os_release: Path) -> str:
    for line in os_release.read_text().splitlines():
        key, _, value = line.partition("=")
        if key == "VERSION_CODENAME":
            return value.strip().strip('"')
    return ""


def host_debian_mirror(os_release: Path = OS_RELEASE) -> str:
    """The archive the host's apt sources use for the host's Debian release.

    A user's own mirror is what they expect every download to come from, so
    the repository names none: this reads it from apt (``sources.list`` and
    the deb822 ``.sources`` files alike).
    """
    codename = _os_release_codename(os_release)
    if not codename:
        raise DockerError(f"no VERSION_CODENAME in {os_release}: is this Debian?")
    targets = run(
        ["apt-get", "indextargets", "--no-release-info", "--format", "$(RELEASE) $(SITE)"],
        timeout=60,
    )
    for line in targets.splitlines():
        release, _, site = line.partition(" ")
        if release == codename and site:
            return site.rstrip("/")
    raise DockerError(
        f"the host's apt sources have no entry for {codename}, so there is no mirror to "
        "make the base image from: add your Debian mirror to /etc/apt/sources.list.d/"
    )


def base_image(engine: Engine, work: Path, spec: BaseSpec = BOOKWORM) -> tuple[str, float]:
    """The cached base image of ``spec``, made first if missing;
    ``(name, seconds spent making it)``."""
    key = spec.key()
    found = engine.docker(
        ["images", "--quiet", "--filter", f"label={BASE_LABEL}={key}", spec.image]
    ).strip()
    if found:
        return spec.image, 0.0
    started = time.monotonic()
    mirror = host_debian_mirror()
    rootfs = Path(tempfile.mkdtemp(prefix="v6alt-rootfs-", dir=work))
    try:
        run(
            [
                DEBOOTSTRAP,
                "--variant=minbase",
                f"--include={','.join(spec.packages)}",
                spec.suite,
                str(rootfs),
                mirror,
            ],
            timeout=1200,
        )
        tar = subprocess.Popen(
            [
                "tar",
                "-C",
                str(rootfs),
                "--exclude=./var/cache/apt/archives/*.deb",
                "--exclude=./var/lib/apt/lists/*_*",
                "-c",
                ".",
            ],
            stdout=subprocess.PIPE,
        )
        assert tar.stdout is not None
        imported = subprocess.run(
            [
                "/usr/bin/docker",
                "import",
                "--change",
                f"LABEL {BASE_LABEL}={key}",
                "--change",
                'CMD ["/bin/bash"]',
                "-",
                spec.image,
            ],
            stdin=tar.stdout,
            capture_output=True,
            check=False,
        )
        tar.stdout.close()
        if tar.wait() != 0 or imported.returncode != 0:
            raise RuntimeError(f"docker import failed: {imported.stderr.decode()[-2000:]}")
    finally:
        shutil.rmtree(rootfs, ignore_errors=True)
    return spec.image, time.monotonic() - started


def wheelhouse(
    repo: Path, into: Path, requirements: Sequence[str], python_version: str | None = None
) -> Path:
    """``into`` with v6alt's wheel built from ``repo`` and the wheels of
    ``requirements`` (``"v6alt[sidecar,check]"`` names the built v6alt), from
    the package index as pip is configured here; for ``python_version``
    (e.g. "3.13") instead of this interpreter's when given."""
    into.mkdir(parents=True, exist_ok=True)
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--quiet"]
    run([*pip, "wheel", "--no-deps", "--wheel-dir", str(into), str(repo)], timeout=600)
    (wheel,) = into.glob("v6alt-*.whl")
    wanted = [r.replace("v6alt[", f"{wheel}[", 1) for r in requirements]
    target = ["--python-version", python_version] if python_version else []
    if wanted:
        run(
            [*pip, "download", "--only-binary=:all:", *target, "--dest", str(into), *wanted],
            timeout=900,
        )
    return into


@dataclass
class ImageSet:
    """The images of one test run, tagged ``v6alt-test/<name>:<tag>``."""

    engine: Engine
    tag: str
    built: list[str] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)
    _dangling_before: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        self._dangling_before = set(self._dangling())

    def _dangling(self) -> list[str]:
        return self.engine.docker(["images", "--quiet", "--filter", "dangling=true"]).split()

    def name(self, image: str) -> str:
        return f"v6alt-test/{image}:{self.tag}"

    def build(
        self,
        image: str,
        context: Path,
        dockerfile: Path,
        build_args: dict[str, str],
        *,
        network_host: bool = False,
    ) -> str:
        """``docker build`` (the classic builder, as compose uses it); the image's name."""
        name = self.name(image)
        argv = [
            "build",
            "--quiet",
            "--rm",
            "--force-rm",
            "--label",
            f"{TEST_LABEL}={self.tag}",
            "--tag",
            name,
            "--file",
            str(dockerfile),
        ]
        if network_host:  # apt inside the build: the host's network, no NAT needed
            argv += ["--network", "host"]
        for key, value in build_args.items():
            argv += ["--build-arg", f"{key}={value}"]
        started = time.monotonic()
        self.engine.docker([*argv, str(context)], timeout=1200)
        self.seconds[image] = time.monotonic() - started
        self.built.append(name)
        return name

    def size(self, image: str) -> int:
        return int(self.engine.docker(["image", "inspect", "--format", "{{.Size}}", image]))

    def remove(self) -> None:
        """Remove every image built here and the build stages they left dangling."""
        for name in reversed(self.built):
            subprocess.run(
                ["/usr/bin/docker", "image", "rm", "--force", name],
                capture_output=True,
                check=False,
            )
        self.built.clear()
        left = [i for i in self._dangling() if i not in self._dangling_before]
        if left:
            subprocess.run(
                ["/usr/bin/docker", "image", "rm", "--force", *left],
                capture_output=True,
                check=False,
            )


@dataclass
class ProjectImages:
    """The images of docker/ built for one run, with what they were built on."""

    base: str
    standin: str
    synapse: str
    v6alt: str
    yggdrasil: str
    prosody: str
    set: ImageSet
    base_seconds: float


def build_project_images(
    image_set: ImageSet, repo: Path, standin_dir: Path, work: Path, synapse_version: str
) -> ProjectImages:
    """The base image (cached), the stand-in for the official Synapse image at
    ``synapse_version``, and docker/'s images built from a copy of docker/ with
    the wheels and mod_v6alt's rock in dist/, as docs/docker.md says."""
    base, base_seconds = base_image(image_set.engine, work)
    standin_context = work / "standin"
    shutil.copytree(standin_dir, standin_context)
    wheelhouse(
        repo,
        standin_context / "wheels",
        [f"matrix-synapse[redis]=={synapse_version}", "psycopg2-binary"],
    )
    standin = image_set.build(
        "synapse-standin", standin_context, standin_context / "Dockerfile", {"BASE_IMAGE": base}
    )
    context = work / "docker"
    shutil.copytree(repo / "docker", context, ignore=shutil.ignore_patterns("dist"))
    wheelhouse(repo, context / "dist", ["v6alt[sidecar,check]"])
    run([str(repo / "scripts" / "build-rock.sh"), str(context / "dist")], timeout=300)
    offline = {"PIP_OPTIONS": "--no-index"}
    synapse = image_set.build(
        "synapse",
        context,
        context / "synapse" / "Dockerfile",
        {"SYNAPSE_IMAGE": standin, **offline},
    )
    v6alt = image_set.build(
        "v6alt", context, context / "v6alt" / "Dockerfile", {"BASE_IMAGE": base, **offline}
    )
    # apt inside these two builds (bookworm-backports): the host's network.
    yggdrasil = image_set.build(
        "yggdrasil",
        context,
        context / "yggdrasil" / "Dockerfile",
        {"V6ALT_IMAGE": v6alt},
        network_host=True,
    )
    prosody = image_set.build(
        "prosody",
        context,
        context / "prosody" / "Dockerfile",
        {"BASE_IMAGE": base},
        network_host=True,
    )
    return ProjectImages(base, standin, synapse, v6alt, yggdrasil, prosody, image_set, base_seconds)
