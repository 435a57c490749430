"""TLS for the API's TCP listeners, with half-close.

asyncio's own TLS transport tears the whole connection down when the client sends ``close_notify``.
Docker's CLI sends exactly that when its side of an attach ends (``CloseWrite`` on a TLS connection;
``docker run`` without ``-i`` does it at once) and then reads the container's output: with asyncio's
transport that output is lost. Go's server, and this one, treat ``close_notify`` as end of input only
(TLS 1.3 allows writing on).

Terms:

- *raw side*: the TCP connection; ``TLSServerProtocol`` is its protocol and runs an ``ssl.SSLObject``
  over two memory BIOs (bytes in from TCP, bytes out to TCP).
- *plain side*: what the HTTP server sees: a ``TLSTransport`` handed to an ordinary
  ``asyncio.StreamReaderProtocol`` once the handshake is done, so handlers get the usual
  ``StreamReader``/``StreamWriter``.

A client that is refused (no certificate, or one the CA did not sign) never reaches the plain side.
A client speaking plain HTTP gets Go's answer, ``400 Client sent an HTTP request to an HTTPS server.``
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from typing import Any

log = logging.getLogger("dockyard.daemon")

READ_SIZE = 65536
PLAIN_HTTP_ANSWER = b"HTTP/1.0 400 Bad Request\r\n\r\nClient sent an HTTP request to an HTTPS server.\n"


class TLSTransport(asyncio.Transport):
    """The plain side of one TLS connection (see the module's terms)."""

    def __init__(self, tls: TLSServerProtocol) -> None:
        super().__init__()
        self._tls = tls

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self._tls.send(bytes(data))

    def can_write_eof(self) -> bool:
        return False

    def is_closing(self) -> bool:
        return self._tls.raw.is_closing()

    def close(self) -> None:
        self._tls.close()

    def abort(self) -> None:
        self._tls.raw.abort()

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        if name == "ssl_object":
            return self._tls.ssl
        if name == "peercert":
            return self._tls.ssl.getpeercert()
        return self._tls.raw.get_extra_info(name, default)

    def pause_reading(self) -> None:
        self._tls.raw.pause_reading()

    def resume_reading(self) -> None:
        self._tls.raw.resume_reading()

    def is_reading(self) -> bool:
        return self._tls.raw.is_reading()

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        self._tls.raw.set_write_buffer_limits(high, low)

    def get_write_buffer_size(self) -> int:
        return self._tls.raw.get_write_buffer_size()


class TLSServerProtocol(asyncio.Protocol):
    """The raw side of one TLS connection: handshake, decrypt into ``plain``, encrypt its writes."""

    def __init__(self, context: ssl.SSLContext, plain: asyncio.Protocol) -> None:
        self.context = context
        self.plain = plain
        self.incoming = ssl.MemoryBIO()
        self.outgoing = ssl.MemoryBIO()
        self.ssl = context.wrap_bio(self.incoming, self.outgoing, server_side=True)
        self.raw: asyncio.Transport = None  # type: ignore[assignment]  # set in connection_made
        self.ready = False  # the handshake is done and ``plain`` has its transport
        self.input_ended = False  # close_notify or TCP EOF passed on to ``plain``

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.raw = transport

    def data_received(self, data: bytes) -> None:
        self.incoming.write(data)
        if not self.ready and not self._handshake():
            return
        while not self.input_ended:
            try:
                chunk = self.ssl.read(READ_SIZE)
            except ssl.SSLWantReadError:
                break
            except ssl.SSLError as exc:
                log.debug("TLS connection from %s broken: %s", self.raw.get_extra_info("peername"), exc)
                self._flush()
                self.raw.abort()
                return
            if not chunk:  # close_notify: the client's input ended; we may still write
                self._end_input()
                break
            self.plain.data_received(chunk)
        self._flush()

    def _handshake(self) -> bool:
        try:
            self.ssl.do_handshake()
        except ssl.SSLWantReadError:
            self._flush()
            return False
        except ssl.SSLError as exc:
            self._flush()  # the alert, if any
            if exc.reason == "HTTP_REQUEST":
                self.raw.write(PLAIN_HTTP_ANSWER)
            log.info("TLS handshake with %s refused: %s", self.raw.get_extra_info("peername"), exc.reason or exc)
            self.raw.close()
            return False
        self._flush()
        self.ready = True
        self.plain.connection_made(TLSTransport(self))
        return True

    def _end_input(self) -> None:
        if not self.input_ended:
            self.input_ended = True
            self.plain.eof_received()

    def eof_received(self) -> bool:
        if self.ready:
            self._end_input()
            return True  # keep the TCP connection open for our writes
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        if self.ready:
            self.plain.connection_lost(exc)

    def pause_writing(self) -> None:
        self.plain.pause_writing()

    def resume_writing(self) -> None:
        self.plain.resume_writing()

    def send(self, data: bytes) -> None:
        if self.raw.is_closing():
            return
        try:
            self.ssl.write(data)
        except ssl.SSLError as exc:
            log.debug("TLS write to %s failed: %s", self.raw.get_extra_info("peername"), exc)
            self.raw.abort()
            return
        self._flush()

    def close(self) -> None:
        """Send close_notify (without waiting for the client's) and close the TCP connection."""
        if self.raw.is_closing():
            return
        try:
            self.ssl.unwrap()
        except ssl.SSLError:
            pass  # SSLWantReadError: the client's close_notify has not come; no need to wait for it
        self._flush()
        self.raw.close()

    def _flush(self) -> None:
        data = self.outgoing.read()
        if data and not self.raw.is_closing():
            self.raw.write(data)


async def start_tls_server(on_connection: Any, host: str, port: int, context: ssl.SSLContext,
                           limit: int) -> asyncio.Server:
    """``asyncio.start_server`` for TLS, with the half-close described in the module's docstring."""
    loop = asyncio.get_running_loop()

    def factory() -> TLSServerProtocol:
        reader = asyncio.StreamReader(limit=limit, loop=loop)
        return TLSServerProtocol(context, asyncio.StreamReaderProtocol(reader, on_connection, loop=loop))

    return await loop.create_server(factory, host, port)
