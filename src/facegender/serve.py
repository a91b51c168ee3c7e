"""`facegender serve`: the classifier behind an HTTP API (FastAPI) and a small offline page. No TensorFlow.

Safe defaults: binds 127.0.0.1; uploads are size-limited (413) and checked by decoding, not by their
extension (415); batches are limited in files; errors are JSON `{"error": message}`, never a traceback;
no route reads a path given by the user. Inference runs in a bounded thread pool, off the event loop.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated, Any

import anyio
import numpy as np
from fastapi import FastAPI, File, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from facegender import __version__
from facegender.errors import ImageError
from facegender.images import decode_image, prepare
from facegender.inference import Classifier
from facegender.predict import error_row, result_row

log = logging.getLogger("facegender.serve")


class ApiError(Exception):
    def __init__(self, status: int, message: str) -> None:
        self.status = status
        self.message = message


def create_app(
    model: str | Path | None = None,
    max_upload_mb: float = 10.0,
    max_batch_files: int = 16,
    workers: int = 2,
) -> FastAPI:
    """The FastAPI application serving one loaded model."""
    classifier = Classifier.load(model)
    limiter = anyio.CapacityLimiter(max(1, workers))
    max_bytes = int(max_upload_mb * 1024 * 1024)
    info = classifier.info
    model_name = str(info.extra.get("name") or classifier.path.parent.name or classifier.path.stem)

    app = FastAPI(
        title="facegender",
        version=__version__,
        description="Face gender classification (female / male) that holds up in bad conditions.",
    )

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

    @app.exception_handler(Exception)
    async def unexpected(_: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error")  # the trace goes to the server log, never to the client
        return JSONResponse({"error": "internal error; see the server log"}, status_code=500)

    async def read_upload(upload: UploadFile) -> tuple[str, bytes]:
        name = Path(upload.filename or "upload").name  # a label only: never used as a path
        data = await upload.read(max_bytes + 1)
        if len(data) > max_bytes:
            raise ApiError(413, f"{name}: upload larger than {max_upload_mb:g} MB")
        if not data:
            raise ApiError(415, f"{name}: empty upload; send a JPEG, PNG, BMP or WebP image")
        return name, data

    def classify(items: list[tuple[str, bytes]]) -> list[dict[str, Any]]:
        decoded: list[tuple[str, np.ndarray | str]] = []
        for name, data in items:
            try:
                decoded.append((name, prepare(decode_image(data, name), info.image_size, info.crop)))
            except ImageError as exc:
                decoded.append((name, exc.reason))
        good = [image for _, image in decoded if isinstance(image, np.ndarray)]
        probs = iter(classifier.predict(np.stack(good)) if good else [])
        rows = []
        for name, image in decoded:
            if isinstance(image, np.ndarray):
                rows.append(result_row(name, float(next(probs)), info.threshold))
            else:
                rows.append(error_row(name, image, info.threshold))
        return rows

    @app.get("/health")
    async def health() -> dict[str, Any]:
        """Liveness and the model being served."""
        return {"status": "ok", "model": model_name, "version": __version__, "threshold": info.threshold,
                "backend": classifier.backend, "image_size": info.image_size}  # fmt: skip

    @app.post("/predict")
    async def predict_one(file: Annotated[UploadFile, File(description="one image")]) -> dict[str, Any]:
        """Classify one image. 413 if too large, 415 if it is not an image."""
        item = await read_upload(file)
        rows = await anyio.to_thread.run_sync(classify, [item], limiter=limiter)
        if rows[0]["label"] == "error":
            raise ApiError(415, f"{item[0]}: {rows[0]['error']}")
        return {"results": rows}

    @app.post("/predict/batch")
    async def predict_batch(files: Annotated[list[UploadFile], File(description="several images")]) -> dict[str, Any]:
        """Classify several images; unreadable ones come back with label 'error' and a message."""
        if len(files) > max_batch_files:
            raise ApiError(413, f"{len(files)} files in one batch; the limit is {max_batch_files}")
        items = [await read_upload(f) for f in files]
        return {"results": await anyio.to_thread.run_sync(classify, items, limiter=limiter)}

    @app.get("/", response_class=HTMLResponse)
    async def page() -> str:
        """A page to drop a photo on and see the label."""
        return PAGE

    return app


def run(model: str | Path | None, host: str, port: int, workers: int, max_upload_mb: float, max_batch: int) -> None:
    import uvicorn

    app = create_app(model, max_upload_mb=max_upload_mb, max_batch_files=max_batch, workers=workers)
    print(f"serving on http://{host}:{port}  (page: /, API docs: /docs)", flush=True)
    uvicorn.run(app, host=host, port=port, log_level="warning")


PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>facegender</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body{font-family:system-ui,sans-serif;max-width:760px;margin:2rem auto;padding:0 1rem;color:#222}
#drop{border:2px dashed #888;border-radius:8px;padding:2rem;text-align:center;cursor:pointer}
#drop.over{background:#eef5ff;border-color:#36c}
canvas{max-width:100%;margin-top:1rem;border-radius:4px}
#result{font-size:1.3rem;margin-top:1rem;min-height:1.6rem}
.error{color:#b00}
</style></head>
<body>
<h1>facegender</h1>
<p>Choose or drop a photo of a face. It is sent only to this server.</p>
<div id="drop"><input id="file" type="file" accept="image/*"><p>or drop an image here</p></div>
<div id="result" role="status" aria-live="polite"></div>
<canvas id="canvas" width="0" height="0"></canvas>
<script>
const drop = document.getElementById('drop'), input = document.getElementById('file');
const result = document.getElementById('result'), canvas = document.getElementById('canvas');
function show(file) {
  const url = URL.createObjectURL(file), img = new Image();
  img.onload = () => {
    const scale = Math.min(1, 700 / img.width);
    canvas.width = img.width * scale; canvas.height = img.height * scale;
    canvas.getContext('2d').drawImage(img, 0, 0, canvas.width, canvas.height);
  };
  img.src = url;
}
async function send(file) {
  result.className = ''; result.textContent = 'Classifying ' + file.name + ' ...';
  show(file);
  const body = new FormData(); body.append('file', file);
  try {
    const response = await fetch('predict', {method: 'POST', body});
    const data = await response.json();
    if (!response.ok) { result.className = 'error'; result.textContent = data.error; return; }
    const r = data.results[0];
    const sure = r.label === 'male' ? r.p_male : 1 - r.p_male;
    result.innerHTML = '';
    const b = document.createElement('b'); b.id = 'label'; b.textContent = r.label;
    result.append(b, ` (p(male) = ${r.p_male.toFixed(3)}, ${(100 * sure).toFixed(1)}% sure)`);
    const ctx = canvas.getContext('2d');
    ctx.font = 'bold 20px system-ui'; ctx.fillStyle = 'rgba(0,0,0,.6)';
    ctx.fillRect(0, 0, ctx.measureText(r.label).width + 16, 30);
    ctx.fillStyle = '#fff'; ctx.fillText(r.label, 8, 22);
  } catch (e) { result.className = 'error'; result.textContent = 'Request failed: ' + e; }
}
input.addEventListener('change', () => input.files[0] && send(input.files[0]));
drop.addEventListener('dragover', e => { e.preventDefault(); drop.classList.add('over'); });
drop.addEventListener('dragleave', () => drop.classList.remove('over'));
drop.addEventListener('drop', e => {
  e.preventDefault(); drop.classList.remove('over');
  if (e.dataTransfer.files[0]) send(e.dataTransfer.files[0]);
});
</script>
</body></html>
"""
