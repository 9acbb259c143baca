"""v6alt.deploy: the files a v6alt server is deployed with, and ``v6alt docker-setup``.

One maker of each: Synapse's homeserver.yaml settings the docs document
(:mod:`.homeserver_config`), TLS certificates, self-signed or from a
certificate authority (:mod:`.certificates`), and the container setup that
writes a compose stack's configuration from its own address
(:mod:`.docker_setup`, the command in :mod:`.cli_docker_setup`). The lab
writes its disposable servers' files with the same makers. Imports only the
core.
"""
