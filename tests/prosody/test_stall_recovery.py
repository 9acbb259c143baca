"""Stalled s2s streams to a v6.alt peer: held, resent once the peer answers, never shown twice.

The two servers sit on one bridge; pulling a node's port out of it (or
blocking one direction with a prohibit route) stalls the TCP connection
between them without closing it, as a mesh link cut does. Short timeouts
keep the tests quick; the defaults are in docs/prosody.md.
"""

from __future__ import annotations

import re
import time
from collections import Counter

import pytest

from v6alt.lab.xmpp.users import XmppUser

from .conftest import Site, SiteFactory
from .servers import Mesh, wait_until

A_ADDRESS = "200:7670::a"
B_ADDRESS = "200:7670::b"

QUICK = """
v6alt_s2s_stall_timeout = 3
v6alt_s2s_probe_interval = 1
"""
LATE_COPIES = 8.0  # seconds for a closed stream's copies to show up, if they were to


def _connected(a: Site, b: Site) -> tuple[XmppUser, XmppUser]:
    """alice on a and bob on b, with the s2s streams both ways already up."""
    alice, bob = a.user("alice"), b.user("bob")
    alice.send(bob.jid, "warm-up a")
    bob.wait_message("warm-up a")
    bob.send(alice.jid, "warm-up b")
    alice.wait_message("warm-up b")
    time.sleep(1)  # the pings after the warm-ups are answered (BARRIER_DELAY + a round trip)
    return alice, bob


def _bodies(user: XmppUser, prefix: str) -> Counter[str]:
    return Counter(
        e["body"] for e in user.drain() if e["event"] == "message" and e["body"].startswith(prefix)
    )


def _errors(user: XmppUser) -> list[str]:
    return [e["condition"] for e in user.drain() if e["event"] == "error"]


def _wait_log(site: Site, text: str, timeout: float = 30) -> None:
    wait_until(lambda: text in site.server.log_text(), timeout, f"{text!r} in {site.domain}'s log")


def _wait_log_match(site: Site, pattern: str, timeout: float = 30) -> None:
    wait_until(
        lambda: re.search(pattern, site.server.log_text()) is not None,
        timeout,
        f"{pattern!r} in {site.domain}'s log",
    )


@pytest.mark.parametrize("modules", ["", "smacks"], ids=["plain", "with-smacks"])
def test_stalled_stream_is_closed_and_everything_resent_once_the_peer_answers(
    lab: Mesh, site: SiteFactory, modules: str
) -> None:
    # With mod_smacks (Debian's default config has it), stream management runs
    # on s2s too: its queue of the closed stream must not bounce what is resent.
    extra = f'\tmodules_enabled = {{ "{modules}" }}' if modules else ""
    a = site("a", A_ADDRESS, settings=QUICK, host_settings=extra)
    b = site("b", B_ADDRESS, settings=QUICK, host_settings=extra)
    alice, bob = _connected(a, b)

    lab.set_link(b.node, up=False)
    unconfirmed = [f"cut #{i}" for i in range(3)]
    for body in unconfirmed:
        alice.send(bob.jid, body)
    _wait_log(a, f"s2s to {b.domain}: no answer to a ping for 3s")
    held = [f"cut held #{i}" for i in range(2)]
    for body in held:
        alice.send(bob.jid, body)
    time.sleep(3)  # several probes, all failing while the port is out
    assert "answers again" not in a.server.log_text()
    assert _bodies(bob, "cut ") == Counter()

    lab.set_link(b.node, up=True)
    for body in unconfirmed + held:
        bob.wait_message(body, timeout=60)
    # (+1 when the warm-up's confirmation was still on its way at the cut)
    _wait_log_match(
        a, rf"resending [{len(unconfirmed)}{len(unconfirmed) + 1}] unconfirmed and {len(held)} held"
    )
    bob.send(alice.jid, "after the cut")
    alice.wait_message("after the cut", timeout=60)
    time.sleep(LATE_COPIES)
    assert _bodies(bob, "cut ") == Counter(unconfirmed + held)
    assert _errors(alice) == [] and _errors(bob) == []
    if modules:
        assert "Enabling stream management" in b.server.log_text()


def test_a_resent_stanza_that_had_arrived_is_dropped_by_the_receiver(
    lab: Mesh, site: SiteFactory
) -> None:
    a, b = site("a", A_ADDRESS, settings=QUICK), site("b", B_ADDRESS, settings=QUICK)
    alice, bob = _connected(a, b)

    # b hears a but cannot answer: the message arrives, the ping's answer does not.
    b.node.run(["ip", "-6", "route", "add", "prohibit", f"{A_ADDRESS}/128"])
    alice.send(bob.jid, "one way")
    bob.wait_message("one way")
    _wait_log(a, f"s2s to {b.domain}: no answer to a ping for 3s")
    b.node.run(["ip", "-6", "route", "del", "prohibit", f"{A_ADDRESS}/128"])

    _wait_log_match(a, r"resending [12] unconfirmed and 0 held")
    _wait_log(b, f"Dropping a message from {alice.jid}")
    alice.send(bob.jid, "after the cut")
    bob.wait_message("after the cut", timeout=60)
    time.sleep(LATE_COPIES)
    assert _bodies(bob, "one way") == Counter(["one way"])
    # The mark of a resent stanza never reaches a client.
    assert all("resent" not in str(e) for e in bob.drain())
    assert _errors(alice) == []


def test_held_stanzas_bounce_after_the_hold_time_and_beyond_the_hold_limit(
    lab: Mesh, site: SiteFactory
) -> None:
    settings = QUICK + "v6alt_s2s_hold_time = 6\nv6alt_s2s_hold_max = 1\n"
    a, b = site("a", A_ADDRESS, settings=settings), site("b", B_ADDRESS, settings=QUICK)
    alice, bob = _connected(a, b)

    lab.set_link(b.node, up=False)
    alice.send(bob.jid, "never #0")
    _wait_log(a, f"s2s to {b.domain}: no answer to a ping for 3s")
    alice.send(bob.jid, "never #1")  # held
    alice.send(bob.jid, "never #2")  # over the limit: bounced at once
    alice.wait_for(lambda e: e["event"] == "error", 30, "the bounce over the hold limit")
    _wait_log(a, f"s2s to {b.domain}: no answer for")
    wait_until(lambda: len(_errors(alice)) == 3, 30, "the bounces after the hold time")
    assert Counter(_errors(alice)) == Counter(
        {"remote-server-timeout": 2, "resource-constraint": 1}
    )

    # Nothing is kept for the peer afterwards: the next message just goes.
    lab.set_link(b.node, up=True)
    alice.send(bob.jid, "after the cut")
    bob.wait_message("after the cut", timeout=60)
    time.sleep(LATE_COPIES)
    # The held ones were never written anywhere. "never #0" had been written
    # into the stalled stream before the stall: its bounce says it was not
    # confirmed, and that stream's kernel may still deliver it when the link
    # returns.
    assert _bodies(bob, "never #1") == Counter() and _bodies(bob, "never #2") == Counter()


def test_a_peer_that_takes_stanzas_but_cannot_answer_gets_them_once_and_no_endless_resends(
    lab: Mesh, site: SiteFactory
) -> None:
    # b may not dial a (a rule for new connections to a's s2s port) and does
    # not answer over a's own stream (no bidi): a's pings are never answered
    # although everything a sends arrives.
    one_way = QUICK + 'modules_disabled = { "s2s_bidi" }\n'
    a, b = site("a", A_ADDRESS, settings=QUICK), site("b", B_ADDRESS, settings=one_way)
    alice, bob = a.user("alice"), b.user("bob")
    b.node.run(["ip", "-6", "rule", "add", "to", f"{A_ADDRESS}/128", "dport", "5269", "prohibit"])

    alice.send(bob.jid, "one way")
    bob.wait_message("one way")
    _wait_log(a, "was resent 3 times without a confirmation; sending it once more, untracked", 90)
    time.sleep(LATE_COPIES)
    assert _bodies(bob, "one way") == Counter(["one way"])
    assert _errors(alice) == []
