"""Synapse module: federation with .v6.alt server names."""
