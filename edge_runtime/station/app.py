"""The station's web application (Starlette): screens, live events, and the guards around them.

Every request passes :class:`Guard`: a body-size limit, the server-side session cookie (HttpOnly,
SameSite=Strict), the login requirement when an operator PIN is configured, and security headers
(a Content-Security-Policy without inline scripts or styles). Every POST carries the session's CSRF
token (form field ``csrf`` or header ``X-CSRF-Token``) or is refused with 403. No route puts patient
data in a URL: searches and exports are POST forms, results are addressed by their row number.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import sys
import tempfile
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from edge_runtime.station import results_db
from edge_runtime.station.controller import StationBusy, StationController
from edge_runtime.station.live import Broadcaster
from edge_runtime.station.present import device_context, result_context
from edge_runtime.station.security import LoginLimiter, SessionStore, same_token, verify_pin

LOG = logging.getLogger("elvmass.station")
MAX_BODY_BYTES = 16 * 1024  # the largest form is a few hundred bytes
COOKIE = "elvmass_session"
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
       "form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
PUBLIC_PATHS = ("/login", "/static/")
PRINT_TIMEOUT_S = 120.0
PACKAGE_DIR = Path(str(resources.files("edge_runtime.station")))


@dataclass
class StationSettings:
    """What the app needs besides the controller."""

    config: Any  # ClinicConfig
    config_path: str | None = None
    bundle: str | None = None
    backend: str | None = None
    precision: str | None = None
    source_label: str = ""
    allowed_hosts: tuple[str, ...] = ()  # Host headers accepted (empty = any: a LAN bind behind a PIN)


class Guard:
    """Pure ASGI middleware: body limit, session cookie, login, security headers, Host check."""

    def __init__(self, app: Any, sessions: SessionStore, pin_required: bool, allowed_hosts: tuple[str, ...]) -> None:
        self.app = app
        self.sessions = sessions
        self.pin_required = pin_required
        self.allowed_hosts = allowed_hosts

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {key.decode("latin-1"): value.decode("latin-1") for key, value in scope.get("headers", [])}
        if self.allowed_hosts and headers.get("host", "") not in self.allowed_hosts:
            # DNS rebinding: a web page must not reach this local server under another name.
            await self._plain(send, 421, "Unknown host name: open the station at its own address.")
            return
        length = headers.get("content-length")
        if length is not None and (not length.isdigit() or int(length) > MAX_BODY_BYTES):
            await self._plain(send, 413, f"Request too large (the limit is {MAX_BODY_BYTES // 1024} kB).")
            return
        key = _cookie(headers.get("cookie", ""), COOKIE)
        session = self.sessions.get(key)
        new_key = None
        if session is None:
            new_key, session = self.sessions.new()
        scope.setdefault("state", {})["session"] = session
        scope["state"]["session_key"] = new_key or key
        path = scope.get("path", "")
        if self.pin_required and not session.authenticated and not path.startswith(PUBLIC_PATHS):
            if scope.get("method") == "GET" and path != "/events":
                await self._redirect(send, "/login", new_key)
            else:
                await self._plain(send, 401, "Log in first.", new_key)
            return

        received = 0

        async def limited_receive() -> dict:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > MAX_BODY_BYTES:
                    raise HTTPException(413, f"Request too large (the limit is {MAX_BODY_BYTES // 1024} kB).")
            return message

        async def send_with_headers(message: dict) -> None:
            if message["type"] == "http.response.start":
                extra = _security_headers(scope.get("path", ""))
                rotated = scope["state"].get("rotated_key")
                cookie_key = rotated or new_key
                if cookie_key:
                    extra.append((b"set-cookie", _set_cookie(cookie_key)))
                message = dict(message, headers=list(message.get("headers", [])) + extra)
            await send(message)

        await self.app(scope, limited_receive, send_with_headers)

    async def _plain(self, send: Any, status: int, text: str, new_key: str | None = None) -> None:
        headers = [(b"content-type", b"text/plain; charset=utf-8")] + _security_headers("")
        if new_key:
            headers.append((b"set-cookie", _set_cookie(new_key)))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": text.encode()})

    async def _redirect(self, send: Any, location: str, new_key: str | None) -> None:
        headers = [(b"location", location.encode())] + _security_headers("")
        if new_key:
            headers.append((b"set-cookie", _set_cookie(new_key)))
        await send({"type": "http.response.start", "status": 303, "headers": headers})
        await send({"type": "http.response.body", "body": b""})


def _cookie(header: str, name: str) -> str | None:
    for part in header.split(";"):
        key, _, value = part.strip().partition("=")
        if key == name:
            return value
    return None


def _set_cookie(key: str) -> bytes:
    return f"{COOKIE}={key}; Path=/; HttpOnly; SameSite=Strict".encode()


def _security_headers(path: str) -> list[tuple[bytes, bytes]]:
    headers = [(b"content-security-policy", CSP.encode()), (b"x-content-type-options", b"nosniff"),
               (b"referrer-policy", b"no-referrer"), (b"x-frame-options", b"DENY")]
    if not path.startswith("/static/"):
        headers.append((b"cache-control", b"no-store"))  # pages hold patient data: never cached on disk
    return headers


class FormError(Exception):
    """A POST that must be refused before it does anything."""

    def __init__(self, status: int, text: str) -> None:
        super().__init__(text)
        self.status, self.text = status, text


async def read_form(request: Request) -> dict[str, str]:
    """The POST's url-encoded fields after the CSRF check (one value per field)."""
    session = request.scope["state"]["session"]
    content_type = request.headers.get("content-type", "").split(";")[0].strip()
    body = await request.body()
    fields: dict[str, list[str]] = {}
    if body:
        if content_type != "application/x-www-form-urlencoded":
            raise FormError(415, "Send the form as application/x-www-form-urlencoded.")
        try:
            fields = parse_qs(body.decode("utf-8"), keep_blank_values=True, strict_parsing=False, max_num_fields=40)
        except (UnicodeDecodeError, ValueError):
            raise FormError(400, "The form could not be read (bad encoding or too many fields).") from None
    token = request.headers.get("x-csrf-token") or (fields.get("csrf") or [None])[0]
    if not same_token(token, session.csrf):
        raise FormError(403, "Refused: this request did not carry the page's security token (CSRF). "
                             "Reload the page and try again.")
    return {name: values[0] for name, values in fields.items()}


def build_app(controller: StationController, settings: StationSettings) -> Starlette:
    """The Starlette application around ``controller``."""
    templates = Environment(loader=FileSystemLoader(str(PACKAGE_DIR / "templates")),
                            autoescape=select_autoescape(["html"]), auto_reload=False)
    sessions = SessionStore()
    limiter = LoginLimiter()
    pin_hash = settings.config.station_pin_hash
    store_path = controller.store_path

    def page(request: Request, name: str, status: int = 200, **context: Any) -> HTMLResponse:
        session = request.scope["state"]["session"]
        snapshot = controller.snapshot()
        html = templates.get_template(name).render(csrf=session.csrf, phase=snapshot["phase"], link=snapshot["link"],
                                                   pin_required=bool(pin_hash), path=request.url.path, **context)
        return HTMLResponse(html, status_code=status)

    async def home(request: Request) -> Response:
        target = {"acquiring": "/acquire", "result": "/result"}.get(controller.phase, "/patient")
        return RedirectResponse(target, status_code=303)

    async def patient_form(request: Request) -> Response:
        return page(request, "patient.html", values={}, errors={}, busy=controller.phase == "acquiring")

    async def patient_submit(request: Request) -> Response:
        from edge_runtime.runtime.patient import patient_from_operator

        form = await read_form(request)
        values = {key: form.get(key, "")[:80] for key in ("patient_id", "age", "sex", "height", "weight")}
        errors = patient_field_errors(values)
        if errors:
            return page(request, "patient.html", status=400, values=values, errors=errors, busy=False)
        patient = patient_from_operator(values["age"], values["sex"], values["height"], values["weight"],
                                        values["patient_id"])
        try:
            controller.start(patient)
        except StationBusy as error:
            return page(request, "patient.html", status=409, values=values, errors={"form": str(error)}, busy=True)
        return RedirectResponse("/acquire", status_code=303)

    async def acquire(request: Request) -> Response:
        return page(request, "acquire.html", state=controller.snapshot())

    async def cancel(request: Request) -> Response:
        await read_form(request)
        await run_in_threadpool(controller.cancel)
        return RedirectResponse("/patient", status_code=303)

    async def next_patient(request: Request) -> Response:
        await read_form(request)
        try:
            controller.next_patient()
        except StationBusy:
            return RedirectResponse("/acquire", status_code=303)
        return RedirectResponse("/patient", status_code=303)

    async def current_result(request: Request) -> Response:
        result_id = controller.result_id
        if result_id is None:
            return RedirectResponse("/acquire" if controller.phase == "acquiring" else "/patient", status_code=303)
        return await _result_page(request, result_id, current=True)

    async def stored_result(request: Request) -> Response:
        return await _result_page(request, _result_id(request), current=False)

    async def _result_page(request: Request, result_id: int, current: bool) -> Response:
        report = await run_in_threadpool(results_db.stored_report, store_path, result_id)
        if report is None:
            raise HTTPException(404, f"There is no stored result number {result_id}.")
        current = current or (controller.phase == "result" and controller.result_id == result_id)
        return page(request, "result.html", r=result_context(report), current=current)

    async def beats(request: Request) -> Response:
        from edge_runtime.station.printing import beats_payload

        result_id = _result_id(request)
        try:
            payload = await run_in_threadpool(beats_payload, controller.analyzer, store_path, result_id)
        except KeyError:
            raise HTTPException(404, f"There is no stored result number {result_id}.") from None
        return JSONResponse(payload)

    async def report_file(request: Request) -> Response:
        result_id = _result_id(request)
        suffix = request.path_params["kind"]
        if await run_in_threadpool(results_db.stored_report, store_path, result_id) is None:
            raise HTTPException(404, f"There is no stored result number {result_id}.")
        with tempfile.TemporaryDirectory(prefix="elvmass-print-") as folder:
            out = Path(folder) / f"elvmass-result-{result_id}.{suffix}"
            command = [sys.executable, "-m", "edge_runtime.station.printing", "--db", str(store_path), "--id",
                       str(result_id), "--out", str(out)]
            for option, value in (("--config", settings.config_path), ("--bundle", settings.bundle),
                                  ("--backend", settings.backend), ("--precision", settings.precision)):
                if value:
                    command += [option, str(value)]
            repo = str(PACKAGE_DIR.parents[1])
            env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [repo, os.environ.get("PYTHONPATH")])))
            process = await asyncio.create_subprocess_exec(*command, stdout=asyncio.subprocess.PIPE,
                                                           stderr=asyncio.subprocess.PIPE, env=env)
            try:
                _, stderr = await asyncio.wait_for(process.communicate(), PRINT_TIMEOUT_S)
            except asyncio.TimeoutError:
                process.kill()
                raise HTTPException(503, "The printable report took too long; try again.") from None
            if process.returncode != 0 or not out.exists():
                reason = stderr.decode(errors="replace").strip().splitlines()[-1:] or ["unknown error"]
                raise HTTPException(503, f"The printable report could not be made: {reason[0]}")
            content = out.read_bytes()
        media = "application/pdf" if suffix == "pdf" else "image/png"
        return Response(content, media_type=media,
                        headers={"content-disposition": f'inline; filename="elvmass-result-{result_id}.{suffix}"'})

    async def results_page(request: Request) -> Response:
        rows = await run_in_threadpool(results_db.search, store_path)
        return page(request, "results.html", rows=rows, filters={"patient_id": "", "date": ""}, errors=[])

    async def results_search(request: Request) -> Response:
        form = await read_form(request)
        filters = {"patient_id": form.get("patient_id", "")[:80], "date": form.get("date", "")[:20]}
        try:
            patient_id, date = results_db.parse_filters(filters["patient_id"], filters["date"])
        except results_db.SearchError as error:
            return page(request, "results.html", status=400, rows=[], filters=filters, errors=[str(error)])
        rows = await run_in_threadpool(results_db.search, store_path, patient_id, date)
        return page(request, "results.html", rows=rows, filters=filters, errors=[], searched=True)

    async def results_export(request: Request) -> Response:
        from edge_runtime.commands.results import to_csv

        form = await read_form(request)
        try:
            patient_id, date = results_db.parse_filters(form.get("patient_id", ""), form.get("date", ""))
        except results_db.SearchError as error:
            return page(request, "results.html", status=400, rows=[], filters={}, errors=[str(error)])
        kind = form.get("format", "csv")
        if kind not in ("csv", "json"):
            raise FormError(400, "Export format must be csv or json.")
        rows = await run_in_threadpool(results_db.search, store_path, patient_id, date, None)
        body = to_csv(rows) if kind == "csv" else json.dumps(rows, indent=2) + "\n"
        media = "text/csv" if kind == "csv" else "application/json"
        return Response(body, media_type=media,
                        headers={"content-disposition": f'attachment; filename="elvmass-results.{kind}"'})

    async def device(request: Request) -> Response:
        rows = await run_in_threadpool(results_db.search, store_path, None, None, None)
        context = await run_in_threadpool(device_context, controller, settings.config, settings.source_label, len(rows))
        return page(request, "device.html", d=context)

    async def state(request: Request) -> Response:
        return JSONResponse(controller.snapshot())

    async def events(request: Request) -> Response:
        queue = controller.broadcaster.subscribe()
        first = controller.replay_messages()

        async def stream():
            try:
                for message in first:
                    yield message
                while True:
                    try:
                        message = await asyncio.wait_for(queue.get(), timeout=15.0)
                    except asyncio.TimeoutError:
                        message = ": keep-alive\n\n"
                    yield message
            finally:
                controller.broadcaster.unsubscribe(queue)

        return StreamingResponse(stream(), media_type="text/event-stream",
                                 headers={"cache-control": "no-store", "x-accel-buffering": "no"})

    async def login_form(request: Request) -> Response:
        if not pin_hash:
            return RedirectResponse("/", status_code=303)
        return page(request, "login.html", error=None)

    async def login_submit(request: Request) -> Response:
        if not pin_hash:
            return RedirectResponse("/", status_code=303)
        form = await read_form(request)
        client = request.client.host if request.client else "?"
        wait = limiter.wait_s(client)
        if wait > 0:
            return page(request, "login.html", status=429, error=f"Too many wrong PINs. Wait {wait:.0f} s and try again.")
        ok = await run_in_threadpool(verify_pin, form.get("pin", "")[:128], pin_hash)
        if not ok:
            limiter.failed(client)
            LOG.warning("failed station login from %s", client)
            return page(request, "login.html", status=401, error="Wrong PIN.")
        limiter.succeeded(client)
        # A fresh session id on login (no fixation), carrying the authenticated state.
        sessions.drop(request.scope["state"]["session_key"])
        key, session = sessions.new()
        session.authenticated = True
        request.scope["state"]["rotated_key"] = key
        return RedirectResponse("/", status_code=303)

    async def logout(request: Request) -> Response:
        await read_form(request)
        sessions.drop(request.scope["state"]["session_key"])
        return RedirectResponse("/login" if pin_hash else "/", status_code=303)

    async def form_error(request: Request, error: FormError) -> Response:
        return page(request, "error.html", status=error.status, message=error.text)

    async def http_error(request: Request, error: HTTPException) -> Response:
        messages = {404: "This page does not exist.", 405: "That action is not possible here.",
                    413: "Request too large."}
        detail = error.detail if error.detail and error.detail not in ("Not Found", "Method Not Allowed") else None
        if "session" not in request.scope.get("state", {}):
            return Response(detail or messages.get(error.status_code, "Error"), status_code=error.status_code)
        return page(request, "error.html", status=error.status_code,
                    message=detail or messages.get(error.status_code, "Something went wrong."))

    async def server_error(request: Request, error: Exception) -> Response:
        LOG.exception("request failed")  # the path only; forms and bodies are never logged
        return HTMLResponse("<!doctype html><title>Error</title><p>Something went wrong on the station; what is "
                            "stored is safe. Go <a href=\"/\">back</a>.</p>", status_code=500)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette):
        controller.broadcaster.attach(asyncio.get_running_loop())

        async def ticker() -> None:
            while True:
                await asyncio.sleep(0.5)
                controller.tick()

        task = asyncio.create_task(ticker())
        try:
            yield
        finally:
            task.cancel()
            await run_in_threadpool(controller.close)

    routes = [
        Route("/", home),
        Route("/patient", patient_form, methods=["GET"]),
        Route("/patient", patient_submit, methods=["POST"]),
        Route("/acquire", acquire, methods=["GET"]),
        Route("/acquire/cancel", cancel, methods=["POST"]),
        Route("/next", next_patient, methods=["POST"]),
        Route("/result", current_result, methods=["GET"]),
        Route("/results", results_page, methods=["GET"]),
        Route("/results", results_search, methods=["POST"]),
        Route("/results/export", results_export, methods=["POST"]),
        Route("/results/{result_id:int}", stored_result, methods=["GET"]),
        Route("/results/{result_id:int}/beats.json", beats, methods=["GET"]),
        Route("/results/{result_id:int}/report.{kind:str}", report_file, methods=["GET"]),
        Route("/device", device, methods=["GET"]),
        Route("/api/state", state, methods=["GET"]),
        Route("/events", events, methods=["GET"]),
        Route("/login", login_form, methods=["GET"]),
        Route("/login", login_submit, methods=["POST"]),
        Route("/logout", logout, methods=["POST"]),
        Mount("/static", app=StaticFiles(directory=str(PACKAGE_DIR / "static")), name="static"),
    ]
    app = Starlette(routes=routes, lifespan=lifespan,
                    exception_handlers={FormError: form_error, HTTPException: http_error, 500: server_error})
    app.add_middleware(Guard, sessions=sessions, pin_required=bool(pin_hash), allowed_hosts=settings.allowed_hosts)
    return app


def _result_id(request: Request) -> int:
    result_id = int(request.path_params["result_id"])
    if request.path_params.get("kind") not in (None, "pdf", "png"):
        raise HTTPException(404, "The report is available as .pdf or .png.")
    return result_id


def patient_field_errors(values: dict[str, str]) -> dict[str, str]:
    """One plain sentence per wrong field, from the CLI's own validation (``patient_from_operator``)."""
    from edge_runtime.runtime.patient import PatientInputError, patient_from_operator

    errors = {}
    if not values["patient_id"].strip():
        errors["patient_id"] = "Enter the pseudonymous ID (type it or scan it)."
    if values["sex"] not in ("M", "F"):
        errors["sex"] = "Choose female or male: it selects the model and the LVH threshold."
    for name, keyword in (("patient_id", "patient_id"), ("age", "age"), ("height", "height"), ("weight", "weight")):
        try:
            patient_from_operator(**{keyword: values[name]})
        except PatientInputError as error:
            detail = str(error).removeprefix("patient context refused: ").split(": ", 1)[-1]
            detail = detail.replace("is impossible here (expected", "is not possible (enter")
            errors.setdefault(name, detail[:1].upper() + detail[1:] + ".")
    return errors
