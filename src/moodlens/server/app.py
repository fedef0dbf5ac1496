"""`moodlens serve`: the REST API (OpenAPI at /docs) and the upload and result pages, put together
from the routers in `routes/` around one `Services`."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from moodlens.server.jobs import JobStore
from moodlens.server.live import LiveHub
from moodlens.server.routes import analyses, pages, sagemaker
from moodlens.server.services import ServerSettings, Services
from moodlens.server.worker import AnalysisWorkers

log = logging.getLogger(__name__)
MAX_REQUEST_HEADERS = 64 * 1024  # bytes of HTTP request headers


class HeaderLimit:
    """431 for requests whose headers are over the limit, before any route sees them."""

    def __init__(self, app: Any, limit: int = MAX_REQUEST_HEADERS) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and sum(len(k) + len(v) for k, v in scope["headers"]) > self.limit:
            answer = JSONResponse({"error": f"request headers are over {self.limit // 1024} KB"}, status_code=431)
            await answer(scope, receive, send)
            return
        await self.app(scope, receive, send)


def create_app(settings: ServerSettings | None = None, start_workers: bool = True) -> FastAPI:
    settings = settings or ServerSettings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    store = JobStore(settings.url)
    options = settings.analyze_options()
    services = Services(
        settings=settings, store=store, started=start_workers,
        workers=AnalysisWorkers(store, settings.data_dir, settings.workers, settings.job_timeout,
                                settings.max_attempts, warm=settings.warm and start_workers, options=options),
        live=LiveHub(store, settings.data_dir, options, settings.max_live_sessions))

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        store.requeue_running(settings.max_attempts)  # a crash left them half done; they start again
        services.live.end_orphans()
        if start_workers:
            services.workers.start()
            if settings.warm:
                services.live.warm()
        yield
        await services.live.close_all("the server is shutting down")
        if start_workers:
            services.workers.stop()

    app = FastAPI(title="moodlens", version="1", lifespan=lifespan,
                  description="How a video feels: upload it, poll the job, fetch the Analysis.")
    app.state.services = services
    app.add_middleware(HeaderLimit)
    app.add_exception_handler(StarletteHTTPException, _json_error)  # ours, and the router's 404 and 405
    app.add_exception_handler(RequestValidationError, _bad_parameters)
    app.add_exception_handler(Exception, _internal_error)
    for routes in (analyses, sagemaker, pages):
        app.include_router(routes.router)
    return app


async def _json_error(_: Request, err: Exception) -> JSONResponse:
    assert isinstance(err, StarletteHTTPException)
    return JSONResponse({"error": err.detail}, status_code=err.status_code, headers=err.headers)


async def _bad_parameters(_: Request, err: Exception) -> JSONResponse:
    assert isinstance(err, RequestValidationError)
    problems = "; ".join(f"{'.'.join(str(x) for x in e['loc'])}: {e['msg']}" for e in err.errors())
    return JSONResponse({"error": f"bad request: {problems}"}, status_code=422)


async def _internal_error(request: Request, err: Exception) -> JSONResponse:
    log.error("%s %s failed: %s: %s", request.method, request.url.path, type(err).__name__, err)
    return JSONResponse({"error": "internal server error (see the server log)"}, status_code=500)
