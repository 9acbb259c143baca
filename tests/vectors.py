"""The design's name-scheme vectors: address -> canonical name."""

from __future__ import annotations

VECTORS: tuple[tuple[str, str], ...] = (
    ("2001:db8::1", "eaaq3o-e.v6.alt"),
    ("0200::1", "ai-e.v6.alt"),
    ("200:cab8:deb4:ce60:4362:4492:e539:4b5", "aiamvog6wthgaq3cisjokoiewu.v6.alt"),
    ("::1", "a-e.v6.alt"),
    ("::", "a-a.v6.alt"),
    ("fe80::1", "72-e.v6.alt"),
    ("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "77777777777777777777777774.v6.alt"),
    ("1111:0000:0000:1111::1111", "ceiqaaaaaairc-rce.v6.alt"),
    ("1111:0000:0000:0000:1111::1111", "ceiq-eiraaaaaaarce.v6.alt"),
    ("2a00:1098:3a0::1", "fiabbgadu-e.v6.alt"),
    # Ties: the deployed encoder replaces the LAST longest run.
    ("3df::28cd:0:0:0", "appqaaaaaaaaakgn-a.v6.alt"),
    ("0:4c73:ee89:0:2964:0:42d6:2ca1", "aaaey47oreaaakle-efvrmue.v6.alt"),
)
