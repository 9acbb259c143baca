"""Matrix and XMPP clients reaching v6.alt servers by name and by mesh address (docs/clients.md)."""
