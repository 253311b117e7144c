"""A small FHIR R4 endpoint for the outbox tests: real HTTP on 127.0.0.1, resources validated with fhir.resources.

It accepts ``PUT /fhir/<Type>/<id>`` with a bearer token, validates the body as an R4B resource of that
type with the same id, and keeps the latest version of each resource plus every accepted PUT in order.
Failures are injected by the test: ``fail_from`` / ``fail_count`` answer 503 to a run of requests,
``drop_after_store`` stores a resource and then closes the connection without answering (a lost response).
"""

from __future__ import annotations

import json
import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from fhir.resources.R4B import get_fhir_model_class


class FhirTestServer:
    """Start with ``with FhirTestServer(token) as server:``; ``server.base`` is the FHIR base URL."""

    def __init__(self, token: str = "secret-token") -> None:
        self.token = token
        self.resources: dict[tuple[str, str], dict] = {}
        self.accepted: list[tuple[str, str]] = []  # every PUT that was stored, in order
        self.requests = 0
        self.fail_from: int | None = None  # 1-based request number from which to fail
        self.fail_count = 0  # how many requests fail from there
        self.drop_after_store: set[int] = set()  # request numbers whose response is lost after storing
        self.reject_types: set[str] = set()  # resource types answered with 422
        self.invalid: list[str] = []  # validation errors seen (should stay empty)
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/fhir"

    def __enter__(self) -> "FhirTestServer":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def puts_of(self, kind: str, resource_id: str) -> int:
        return Counter(self.accepted)[(kind, resource_id)]

    def _handler(self):
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:  # keep pytest output clean
                pass

            def _answer(self, status: int, body: dict) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/fhir+json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _outcome(self, status: int, text: str) -> None:
                self._answer(status, {"resourceType": "OperationOutcome",
                                      "issue": [{"severity": "error", "code": "processing", "diagnostics": text}]})

            def do_PUT(self) -> None:  # noqa: N802 - http.server's naming
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                with server._lock:
                    server.requests += 1
                    number = server.requests
                if server.fail_from is not None and server.fail_from <= number < server.fail_from + server.fail_count:
                    self._outcome(503, "injected outage")
                    return
                if self.headers.get("Authorization") != f"Bearer {server.token}":
                    self._outcome(401, "bad or missing bearer token")
                    return
                parts = self.path.strip("/").split("/")
                if len(parts) != 3 or parts[0] != "fhir":
                    self._outcome(404, f"no such path {self.path}")
                    return
                _, kind, resource_id = parts
                if kind in server.reject_types:
                    self._outcome(422, f"{kind} refused by this test server")
                    return
                try:
                    body = json.loads(raw)
                    get_fhir_model_class(kind).model_validate(body)
                except Exception as error:  # any validation failure is a 400 with the reason
                    server.invalid.append(f"{kind}/{resource_id}: {error}")
                    self._outcome(400, f"invalid {kind}: {error}")
                    return
                if body.get("resourceType") != kind or body.get("id") != resource_id:
                    self._outcome(400, "resource type/id do not match the URL")
                    return
                with server._lock:
                    created = (kind, resource_id) not in server.resources
                    server.resources[(kind, resource_id)] = body
                    server.accepted.append((kind, resource_id))
                if number in server.drop_after_store:
                    self.close_connection = True
                    self.connection.close()  # stored, but the client never hears it
                    return
                self._answer(201 if created else 200, body)

        return Handler
