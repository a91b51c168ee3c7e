"""`facegender serve`: the classifier behind an HTTP API (FastAPI) and a small offline page. No TensorFlow.

Safe defaults: binds 127.0.0.1; uploads are size-limited (413) and checked by decoding, not by their
extension (415); batches are limited in files; errors are JSON `{"error": message}`, never a traceback;
no route reads a path given by the user. Inference runs in a bounded thread pool, off the event loop.
"""

from __future__ import annotations

import errno
import logging
import socket
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal

import anyio
import numpy as np
from fastapi import FastAPI, File, Query, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi_offline import FastAPIOffline
from starlette.exceptions import HTTPException as StarletteHTTPException

from facegender import __version__
from facegender.errors import FaceGenderError, ImageError, InvalidOption, OptionError
from facegender.faces.detect import FaceDetector, face_inputs
from facegender.faces.images import decode_image
from facegender.runtime.inference import Classifier
from facegender.runtime.rows import error_row, face_rows, parse_band

Band = Annotated[
    str | None,
    Query(description="LOW,HIGH: faces whose p(male) lies strictly between get the label 'uncertain'"),
]
Detect = Annotated[
    Literal["auto", "on", "off"],
    Query(description="auto: a face crop is one face, other photos every face found; on: always find faces; "
          "off: the photo is one face crop"),
]  # fmt: skip

log = logging.getLogger("facegender.serve.app")


class ApiError(Exception):
    def __init__(self, status: int, message: str) -> None:
        self.status = status
        self.message = message


MULTIPART_OVERHEAD = 64 * 1024  # a part's headers and boundaries, generously


class BodyLimit:
    """Refuse a request body over `limit(path)` bytes with 413 before it is stored: at once by its Content-Length,
    and while it streams when it has none (chunked). The multipart parser spools uploads to disk, so without this
    a client could fill the disk before the per-file size check ran. (Starlette's own RequestBodyLimitMiddleware
    is newer than the FastAPI versions this supports.)"""

    def __init__(self, app: Any, limit: Callable[[str], int]) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        limit = self.limit(scope.get("path", ""))
        length = dict(scope.get("headers") or []).get(b"content-length", b"")
        if length and (not length.isdigit() or int(length) > limit):
            response = JSONResponse({"error": _too_large(limit)}, status_code=413, headers={"Connection": "close"})
            return await response(scope, receive, send)
        received = 0

        async def counted() -> dict[str, Any]:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:  # FastAPI passes an HTTPException from the body's parsing through as it is
                    raise StarletteHTTPException(413, _too_large(limit))
            return message

        await self.app(scope, counted, send)


def _too_large(limit: int) -> str:
    return f"request body larger than {limit / 1024 / 1024:.3g} MB; send smaller or fewer files"


def create_app(
    model: str | Path | None = None,
    max_upload_mb: float = 10.0,
    max_batch_files: int = 16,
    workers: int = 2,
) -> FastAPI:
    """The FastAPI application serving one loaded model."""
    classifier = Classifier.load(model)
    detectors: list[FaceDetector] = []  # made on the first request that detects; requests run in parallel threads

    def detector() -> FaceDetector:
        if not detectors:
            try:
                detectors.append(FaceDetector(threads=1))
            except FaceGenderError as exc:
                raise ApiError(503, f"{exc} (or send detect=off)") from None
        return detectors[0]

    limiter = anyio.CapacityLimiter(max(1, workers))
    max_bytes = int(max_upload_mb * 1024 * 1024)

    def body_limit(path: str) -> int:
        files = max_batch_files if path.rstrip("/").endswith("/batch") else 1
        return files * (max_bytes + MULTIPART_OVERHEAD)

    # the page is package data beside this module (plain HTML and JS, no templating), read once, not per request
    page_html = resources.files("facegender.serve").joinpath("page.html").read_text(encoding="utf-8")
    info = classifier.info
    model_name = str(info.extra.get("name") or classifier.path.parent.name or classifier.path.stem)

    # FastAPI's own /docs and /redoc load Swagger UI and ReDoc from a CDN (blank offline); fastapi-offline serves
    # the same pages from files inside the package
    app = FastAPIOffline(
        title="facegender",
        version=__version__,
        description="Face gender classification (female / male) that holds up in bad conditions.",
    )

    app.add_middleware(BodyLimit, limit=body_limit)

    @app.exception_handler(ApiError)
    async def api_error(_: Request, exc: ApiError) -> JSONResponse:
        return JSONResponse({"error": exc.message}, status_code=exc.status)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        return JSONResponse({"error": str(exc.detail)}, status_code=exc.status_code)

    @app.exception_handler(RequestValidationError)
    async def validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        return JSONResponse({"error": f"invalid request: {problems}"}, status_code=422)

    @app.exception_handler(FaceGenderError)
    async def model_error(_: Request, exc: FaceGenderError) -> JSONResponse:  # the model's fault, not the request's
        log.error("%s", exc)
        return JSONResponse({"error": str(exc)}, status_code=500)

    @app.exception_handler(Exception)
    async def unexpected(_: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error")  # the trace goes to the server log, never to the client
        return JSONResponse({"error": "internal error; see the server log"}, status_code=500)

    async def read_upload(upload: UploadFile) -> tuple[str, bytes]:
        name = Path(upload.filename or "upload").name  # a label only: never used as a path
        data = await upload.read(max_bytes + 1)
        if len(data) > max_bytes:
            raise ApiError(413, f"{name}: upload larger than {max_upload_mb:g} MB")
        return name, data  # an empty one is that photo's error, as any other that does not decode

    def band(text: str | None) -> tuple[float, float] | None:
        try:
            return parse_band(text)
        except FaceGenderError as exc:
            raise ApiError(422, str(exc)) from None  # worded with the form field's name

    def classify(
        items: list[tuple[str, bytes]], detect: str, abstain: tuple[float, float] | None = None
    ) -> list[dict[str, Any]]:
        decoded = []
        finder = detector() if detect != "off" else None
        for name, data in items:
            if not data:
                decoded.append((name, "empty upload; send a JPEG, PNG, BMP or WebP image"))
                continue
            try:
                image = decode_image(data, name)
                faces = face_inputs(
                    image, info.image_size, info.crop, finder, detect, info.face_crops, face_scale=info.face_scale
                )
                decoded.append((name, faces))
            except ImageError as exc:
                decoded.append((name, exc.reason))
            except Exception as exc:  # whatever breaks on one photo is that photo's error, never the request's
                log.exception("could not process %s", name)
                decoded.append((name, f"could not process the image ({type(exc).__name__}: {exc})"))
        faces = [face for _, found in decoded if isinstance(found, list) for face in found]
        probs = iter(classifier.predict(np.stack([f.image for f in faces])) if faces else [])
        rows = []
        for name, found in decoded:
            if isinstance(found, list):
                faces_found = [(f.box, float(next(probs)), f.score) for f in found]
                rows.extend(face_rows(name, faces_found, info.threshold, abstain))
            else:
                rows.append(error_row(name, found, info.threshold))
        return rows

    @app.get("/health")
    async def health() -> dict[str, Any]:
        """Liveness and the model being served."""
        return {"status": "ok", "model": model_name, "version": __version__, "threshold": info.threshold,
                "backend": classifier.backend, "image_size": info.image_size}  # fmt: skip

    @app.post("/predict")
    async def predict_one(
        file: Annotated[UploadFile, File(description="one image")], detect: Detect = "auto", abstain_band: Band = None
    ) -> dict[str, Any]:
        """Classify the faces in one image: one result per face, or one 'no_face' result. 413 if too large,
        415 if it is not an image."""
        item = await read_upload(file)
        rows = await anyio.to_thread.run_sync(classify, [item], detect, band(abstain_band), limiter=limiter)
        if rows[0]["label"] == "error":
            raise ApiError(415, f"{item[0]}: {rows[0]['error']}")
        return {"results": rows}

    @app.post("/predict/batch")
    async def predict_batch(
        files: Annotated[list[UploadFile], File(description="several images")],
        detect: Detect = "auto",
        abstain_band: Band = None,
    ) -> dict[str, Any]:
        """Classify the faces in several images; unreadable ones come back with label 'error' and a message."""
        if len(files) > max_batch_files:
            raise ApiError(413, f"{len(files)} files in one batch; the limit is {max_batch_files}")
        items = [await read_upload(f) for f in files]
        abstain = band(abstain_band)
        return {"results": await anyio.to_thread.run_sync(classify, items, detect, abstain, limiter=limiter)}

    @app.get("/", response_class=HTMLResponse)
    async def page() -> str:
        """A page to drop a photo on and see the label (page.html beside this module: plain HTML, no templating)."""
        return page_html

    return app


def bind(host: str, port: int) -> socket.socket:
    """A socket bound to host:port now, so that a bad host or a taken port is a one-line error before serving."""
    if not 0 <= port <= 65535:
        raise InvalidOption("port", "must be between 0 and 65535 (0: any free port)", port)
    try:
        # IPv4 unless the host is an IPv6 address, as uvicorn decides: `localhost` stays 127.0.0.1 even where
        # the system lists ::1 first
        family, kind, proto, _, address = socket.getaddrinfo(
            host,
            port,
            socket.AF_INET6 if ":" in host else socket.AF_INET,
            socket.SOCK_STREAM,
            flags=socket.AI_PASSIVE,
        )[0]
    except (socket.gaierror, UnicodeError) as exc:
        raise OptionError(
            "{host} {value} is not an address to serve on ({reason}); use e.g. 127.0.0.1 (this machine only) or "
            "0.0.0.0 (every network)",
            value=repr(host),
            reason=getattr(exc, "strerror", None) or exc,
        ) from None
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn does: restart over TIME_WAIT
        sock.bind(address)
    except OSError as exc:
        sock.close()
        hint = {
            errno.EADDRINUSE: "it is already in use; choose another {port} or stop the server using it",
            errno.EACCES: "ports below 1024 need root; choose {port} 1024 or above",
            errno.EADDRNOTAVAIL: "that address is not one of this machine's; choose another {host}",
        }.get(exc.errno or 0, "choose another {host} or {port}")
        raise OptionError(
            "cannot serve on {address} ({reason}): " + hint, address=f"{host}:{port}", reason=exc.strerror or exc
        ) from None
    return sock


def run(model: str | Path | None, host: str, port: int, workers: int, max_upload_mb: float, max_batch: int) -> None:
    import uvicorn

    sock = bind(host, port)  # before loading the model: the quick check first
    try:
        app = create_app(model, max_upload_mb=max_upload_mb, max_batch_files=max_batch, workers=workers)
        bound_host, bound_port = sock.getsockname()[:2]  # the real port where --port 0 let the system choose
        shown = f"[{bound_host}]" if ":" in bound_host else bound_host
        print(f"serving on http://{shown}:{bound_port}  (page: /, API docs: /docs)", flush=True)
        uvicorn.Server(uvicorn.Config(app, log_level="warning")).run(sockets=[sock])
    finally:
        sock.close()
