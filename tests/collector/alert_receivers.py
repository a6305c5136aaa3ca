"""Real receivers for the alert tests: an HTTP server (stdlib, on a thread) standing in for a
WeCom group robot and a generic webhook, and an SMTP server (aiosmtpd, on an event loop of its
own), each on a free loopback port, keeping what they received and answering from a script."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from aiosmtpd.smtp import SMTP, Envelope, Session


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class HttpReceiver:
    """Answers each request with the next (status, JSON body) of `answers`, then 200 and
    WeCom's `{"errcode": 0}`."""

    url: str
    answers: list[tuple[int, object]] = field(default_factory=list)
    received: list[Received] = field(default_factory=list)
    arrived: threading.Event = field(default_factory=threading.Event)


@contextmanager
def http_receiver(answers: list[tuple[int, object]] | None = None) -> Iterator[HttpReceiver]:
    receiver = HttpReceiver("", list(answers or []))
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            with lock:
                receiver.received.append(Received(self.path, dict(self.headers), body))
                status, answer = (
                    receiver.answers.pop(0) if receiver.answers else (200, {"errcode": 0})
                )
            data = json.dumps(answer).encode()
            self.send_response(status)
            if 300 <= status < 400 and isinstance(answer, dict) and "location" in answer:
                self.send_header("Location", str(answer["location"]))  # a redirect
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
            receiver.arrived.set()

        def do_GET(self) -> None:  # what a followed redirect would ask for
            with lock:
                receiver.received.append(Received(self.path, dict(self.headers), b""))
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, name="alert-receiver", daemon=True)
    thread.start()
    receiver.url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


@dataclass
class SmtpReceiver:
    """Answers each message's DATA with the next of `answers` (e.g. "451 try later"), then
    "250 OK"; keeps the messages accepted."""

    port: int = 0
    answers: list[str] = field(default_factory=list)
    messages: list[EmailMessage] = field(default_factory=list)
    envelopes: list[tuple[str, list[str]]] = field(default_factory=list)

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        if self.answers:
            answer = self.answers.pop(0)
            if not answer.startswith("250"):
                return answer
        content = envelope.original_content or b""
        message = message_from_bytes(content, policy=policy.default)
        assert isinstance(message, EmailMessage)
        self.messages.append(message)
        self.envelopes.append((str(envelope.mail_from), list(envelope.rcpt_tos)))
        return "250 OK"


@contextmanager
def smtp_receiver(answers: list[str] | None = None) -> Iterator[SmtpReceiver]:
    handler = SmtpReceiver(answers=list(answers or []))
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="smtp-receiver", daemon=True)
    thread.start()

    async def start() -> asyncio.Server:
        return await loop.create_server(lambda: SMTP(handler), "127.0.0.1", 0)

    server = asyncio.run_coroutine_threadsafe(start(), loop).result(10)
    handler.port = server.sockets[0].getsockname()[1]
    try:
        yield handler
    finally:

        async def close() -> None:
            server.close()
            await server.wait_closed()

        asyncio.run_coroutine_threadsafe(close(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()
