"""Prosody bridge: the v6alt sidecar and the Prosody module that asks it."""
