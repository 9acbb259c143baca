"""Just enough of an XMPP server-to-server stream to read headers and features."""

from __future__ import annotations

import socket
import ssl
from dataclasses import dataclass
from typing import Final
from xml.etree.ElementTree import Element, ParseError, XMLPullParser

from .net import StepError

__all__ = [
    "NS_DIALBACK_FEATURE",
    "NS_SASL",
    "NS_STREAMS",
    "NS_TLS",
    "StreamClosed",
    "XmlStream",
    "stream_header",
]

NS_STREAMS: Final = "http://etherx.jabber.org/streams"
NS_TLS: Final = "urn:ietf:params:xml:ns:xmpp-tls"
NS_SASL: Final = "urn:ietf:params:xml:ns:xmpp-sasl"
NS_STANZAS: Final = "urn:ietf:params:xml:ns:xmpp-streams"
NS_DIALBACK_FEATURE: Final = "urn:xmpp:features:dialback"


def _quote(text: str) -> str:
    return text.replace("&", "&amp;").replace("'", "&apos;").replace("<", "&lt;")


def stream_header(sender: str, receiver: str) -> str:
    """The opening tag a server sends to another (RFC 6120 4.7, with dialback namespace)."""
    return (
        "<?xml version='1.0'?><stream:stream xmlns='jabber:server' "
        "xmlns:stream='http://etherx.jabber.org/streams' xmlns:db='jabber:server:dialback' "
        f"from='{_quote(sender)}' to='{_quote(receiver)}' version='1.0'>"
    )


@dataclass
class StreamClosed(Exception):
    """The server ended the stream; ``condition`` is the stream error, if it sent one."""

    condition: str | None
    text: str | None = None

    def __str__(self) -> str:
        if self.condition is None:
            return "the server closed the stream"
        return f"stream error <{self.condition}/>" + (f": {self.text}" if self.text else "")


class XmlStream:
    """Reads one stream's header and its top-level elements from a socket."""

    def __init__(self, sock: socket.socket | ssl.SSLSocket, timeout: float) -> None:
        self.sock = sock
        self.sock.settimeout(timeout)
        self._parser: XMLPullParser[Element] = XMLPullParser(events=("start", "end"))
        self._depth = 0
        self._pending: list[tuple[str, Element]] = []

    def send(self, text: str) -> None:
        try:
            self.sock.sendall(text.encode("utf-8"))
        except OSError as exc:
            raise StepError(f"send failed: {exc.strerror or exc}") from None

    def _events(self) -> tuple[str, Element]:
        while not self._pending:
            try:
                data = self.sock.recv(65536)
            except TimeoutError:
                raise StepError("the server sent nothing in time") from None
            except OSError as exc:
                raise StepError(f"receive failed: {exc.strerror or exc}") from None
            if not data:
                raise StreamClosed(None)
            try:
                self._parser.feed(data)
                self._pending.extend(self._parser.read_events())  # type: ignore[arg-type]
            except ParseError as exc:
                raise StepError(f"the server sent malformed XML: {exc}") from None
        return self._pending.pop(0)

    def read_header(self) -> dict[str, str]:
        """The attributes of the server's ``<stream:stream>`` (namespaces stripped)."""
        event, element = self._events()
        if event != "start" or element.tag != f"{{{NS_STREAMS}}}stream":
            raise StepError(f"expected a stream header, got <{element.tag}>")
        self._depth = 1
        return {key.rsplit("}", 1)[-1]: value for key, value in element.attrib.items()}

    def read_element(self) -> Element:
        """The next complete top-level element; raises StreamClosed on a stream error or end."""
        while True:
            event, element = self._events()
            if event == "start":
                self._depth += 1
                continue
            self._depth -= 1
            if self._depth == 0:
                raise StreamClosed(None)
            if self._depth == 1:
                if element.tag == f"{{{NS_STREAMS}}}error":
                    raise _stream_error(element)
                return element


def _stream_error(element: Element) -> StreamClosed:
    condition, text = "undefined-condition", None
    for child in element:
        local = child.tag.rsplit("}", 1)[-1]
        if local == "text":
            text = child.text
        else:
            condition = local
    return StreamClosed(condition, text)
