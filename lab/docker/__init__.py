"""Container tests' harness: Debian's docker.io engine, locally made base images,
the project's images and compose stacks (docs/docker.md).

- :mod:`.engine`: a running dockerd (started, and stopped again, when it was not
  running) and the ``docker``/``docker-compose`` commands;
- :mod:`.images`: the cached Debian base image (debootstrap + ``docker import``),
  the stand-in for the official Synapse image, the images built from docker/;
- :mod:`.stacks`: one compose project (up, down with its volumes, exec, addresses);
- :mod:`.matrix`: the Matrix client API over TCP, for a homeserver in a container.

No registry is needed: every image starts from the local base. The product never
imports this package.
"""
