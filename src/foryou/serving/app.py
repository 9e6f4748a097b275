"""The HTTP routes (FastAPI): thin, each one parses, calls the Service and shapes the response.

`create_app` builds the app over a bundle; `app_from_environment` is the factory uvicorn imports in every
worker process (`foryou serve` puts the settings in FORYOU_SERVE_SETTINGS).
"""

from __future__ import annotations

import json
import logging
import os
import signal
import tempfile
import threading
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib import resources
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Query, Request, Security
from fastapi import Path as PathParam
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi.security import APIKeyHeader
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from foryou.config import ServingConfig
from foryou.errors import ForyouError, UnknownIdError
from foryou.serving import schemas as api
from foryou.serving.catalog import Filters
from foryou.serving.changes import ChangeSignal
from foryou.serving.checks import stored_event
from foryou.serving.metrics import ServiceMetrics, worker_exited
from foryou.serving.openapi import declared_limits
from foryou.serving.recommender import Query as RecommendQuery
from foryou.serving.security import KEY_HEADER, AccessDenied, ApiKeys, BodySizeLimit, RateLimiter
from foryou.serving.service import NotReadyError, OutsideBundleRootError, Service
from foryou.serving.state import Event, as_utc
from foryou.serving.store import Store

logger = logging.getLogger(__name__)
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

SETTINGS_ENV = "FORYOU_SERVE_SETTINGS"
ItemIdPath = Annotated[str, PathParam(min_length=1, max_length=api.MAX_ID_LENGTH, pattern=api.ID_PATTERN)]
api_key_header = APIKeyHeader(name=KEY_HEADER, auto_error=False, description="the key for writes and admin "
                              "(and reads when serving.require_key_for_reads is set)")
RATE_LIMIT_FILE, ITEM_CHANGES_FILE = "rate_limits.db", "item_changes"


def create_app(bundle_dir: Path, config: ServingConfig, store_url: str, api_keys: list[str],
               load_in_background: bool = True, exit_on_load_failure: bool = False,
               runtime_dir: Path | None = None) -> FastAPI:
    """The service over `bundle_dir`; with `load_in_background`, /healthz answers while the bundle loads; with
    `exit_on_load_failure` (the `foryou serve` process) a bundle that cannot load stops the server.
    `runtime_dir` holds what the server's workers share (rate-limit buckets, the item-change counter); None: a
    folder of this app."""
    keys = ApiKeys([*config.api_keys, *api_keys], config.require_key_for_reads)
    runtime = Path(runtime_dir) if runtime_dir else Path(tempfile.mkdtemp(prefix="foryou-serve-"))
    service = Service(bundle_dir, config, Store(store_url), ChangeSignal(runtime / ITEM_CHANGES_FILE))
    metrics = ServiceMetrics()
    limiter = RateLimiter(config.rate_limit_per_minute, runtime / RATE_LIMIT_FILE)
    load_failure: list[str] = []

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        def load() -> None:
            try:
                service.start()
                metrics.serving(service.recommender.state.model_version)
                logger.info("worker %d ready: serving %s", os.getpid(), service.recommender.state.model_version)
            except Exception as error:  # any failure: say why on /readyz and in the log, never hang "loading"
                load_failure.append(str(error) if isinstance(error, ForyouError) else repr(error))
                logger.error("cannot serve %s: %s", bundle_dir, load_failure[-1],
                             exc_info=not isinstance(error, ForyouError))
                if exit_on_load_failure:
                    os.kill(os.getpid(), signal.SIGTERM)  # uvicorn shuts down; `foryou serve` exits
        loader = threading.Thread(target=load, name="foryou-load", daemon=True)
        loader.start()
        if not load_in_background:
            loader.join()
        yield
        service.stop()
        limiter.close()
        worker_exited(os.getpid())

    app = FastAPI(title="foryou", version="1", lifespan=lifespan,
                  description="Personalised \"For You\" recommendations from a trained foryou bundle.")
    app.state.service = service
    app.add_middleware(Observed, metrics=metrics, limiter=limiter, keys=keys)
    app.add_middleware(BodySizeLimit, max_bytes=config.max_body_bytes)
    _add_error_handlers(app)

    async def read_access(key: Annotated[str | None, Security(api_key_header)] = None) -> None:
        keys.check_read(key)

    async def write_access(key: Annotated[str | None, Security(api_key_header)] = None) -> None:
        keys.check_write(key)

    # Reads are `async def`: a few milliseconds of CPU on one compute thread per worker, so running them on the
    # event loop saves a thread-pool hop per request; their store reads alone go to a thread (Service), so a
    # slow database never stalls the loop. Writes and reload block on disk or load a bundle: threads.
    # The error statuses each kind of route may answer, documented so that clients (and schema checks) know them.
    # Reads declare the key (an OpenAPI security scheme) only when they need one.
    reads: dict[str, Any] = {"dependencies": [Depends(read_access)] if config.require_key_for_reads else [],
                             "responses": _errors(400, 401, 404, 413, 422, 429, 503)}
    writes: dict[str, Any] = {"dependencies": [Depends(write_access)],
                              "responses": _errors(400, 401, 403, 404, 413, 422, 429, 503)}

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def playground() -> str:
        return resources.files("foryou.serving").joinpath("playground.html").read_text(encoding="utf-8")

    @app.get("/healthz", tags=["operations"])
    async def healthz() -> dict[str, str]:
        """Live: the process answers."""
        return {"status": "ok"}

    @app.get("/readyz", tags=["operations"], response_model=api.Readiness,
             responses={503: {"model": api.Readiness}})
    def readyz() -> JSONResponse:
        """Ready: the bundle is loaded and warmed (503 until then)."""
        if load_failure:
            return JSONResponse({"status": "failed", "detail": load_failure[-1]}, status_code=503)
        if not service.ready:
            return JSONResponse({"status": "loading"}, status_code=503)
        return JSONResponse({"status": "ready", "model_version": service.recommender.state.model_version})

    @app.get("/metrics", tags=["operations"], response_class=Response)
    def prometheus() -> Response:
        return Response(metrics.exposition(), media_type=CONTENT_TYPE_LATEST)

    @app.get("/v1/noop", tags=["operations"], include_in_schema=False)
    async def noop() -> dict[str, str]:
        """The floor of the latency benchmark: the same app, middleware and server, no work."""
        return {"status": "ok"}

    @app.post("/v1/recommendations", response_model=api.RecommendationResponse, **reads,
              tags=["recommendations"])
    async def recommend(body: api.RecommendationRequest) -> Response:
        """Top-k items for a known user, a raw history, or both (stored history + the given events)."""
        events = [Event(i.item_id, i.event_type, as_utc(i.timestamp)) for i in body.interactions]
        return await _recommend(body.user_id, events, body.k, body.strategy, body.filters, body.explain)

    @app.get("/v1/users/{user_id}/recommendations", response_model=api.RecommendationResponse,
             **reads, tags=["recommendations"])
    async def user_recommendations(user_id: ItemIdPath, k: Annotated[int, Query(ge=1)] = 10,
                             strategy: Annotated[str | None, Query(min_length=1, max_length=64)] = None,
                             explain: bool = False) -> Response:
        return await _recommend(user_id, [], k, strategy, api.RecommendationFilters(), explain)

    async def _recommend(user_id: str | None, events: list[Event], k: int, strategy: str | None,
                         filters: api.RecommendationFilters, explain: bool) -> Response:
        """The answer validated once and written by pydantic's serializer: an explained answer carries a few
        hundred contributions, which FastAPI's own path would validate again and encode in Python."""
        query = RecommendQuery(user_id, events, k, "", _filters(filters), filters.exclude_seen, explain,
                               filters.seen_event_types)
        result = await service.recommend(query, strategy)
        if result.fallback:
            metrics.fallbacks.labels(fallback=result.fallback).inc()
        answer = api.RecommendationResponse(user_id=user_id, strategy=result.strategy, items=result.items,
                                            model_version=result.model_version, fallback=result.fallback,
                                            warnings=result.warnings)
        return Response(answer.model_dump_json(), media_type="application/json")

    @app.get("/v1/users/{user_id}/history", response_model=api.HistoryResponse, **reads,
             tags=["users"])
    async def history(user_id: ItemIdPath) -> api.HistoryResponse:
        known, events = await service.history(user_id)
        return api.HistoryResponse(user_id=user_id, known_to_model=known, events=[
            api.HistoryEvent(item_id=e.item_id, event_type=e.event_type, timestamp=e.timestamp, source=source)
            for e, source in events])

    @app.get("/v1/items/{item_id}/similar", response_model=api.SimilarResponse, **reads,
             tags=["items"])
    async def similar(item_id: ItemIdPath,
                      k: Annotated[int, Query(ge=1)] = 10) -> api.SimilarResponse:
        items, version = await service.similar(item_id, k, Filters())
        return api.SimilarResponse(item_id=item_id, items=items, model_version=version)

    @app.get("/v1/catalog", response_model=api.CatalogResponse, **reads, tags=["items"])
    async def catalog() -> api.CatalogResponse:
        """The item fields PUT /v1/items accepts (by role) and the strategies this bundle serves."""
        state = service.recommender.state
        roles = state.roles
        return api.CatalogResponse(title=roles.title, category=roles.category, price=roles.price, text=roles.text,
                                   categorical=roles.categorical, numeric=roles.numeric,
                                   strategies=state.bundle.strategies, default_strategy=service.strategy(None),
                                   max_k=service.config.max_k, model_version=state.model_version)

    @app.post("/v1/users/encode", response_model=api.EncodeResponse, **reads, tags=["vectors"])
    async def encode(body: api.EncodeRequest) -> api.EncodeResponse:
        """A user's query vector (for teams that keep their own user state; use it with /v1/retrieve)."""
        events = [Event(i.item_id, i.event_type, as_utc(i.timestamp)) for i in body.interactions]
        vector, version, warnings = await service.encode(body.user_id, events)
        return api.EncodeResponse(vector=vector.tolist(), model_version=version, warnings=warnings)

    @app.post("/v1/retrieve", response_model=api.RetrieveResponse, **reads, tags=["vectors"])
    async def retrieve(body: api.RetrieveRequest) -> api.RetrieveResponse:
        items, version = await service.retrieve(body.vector, body.k, _filters(body.filters), body.exclude_items)
        return api.RetrieveResponse(items=items, model_version=version)

    @app.post("/v1/events", response_model=api.EventsResponse, **writes, tags=["writes"])
    def events(body: api.EventsRequest) -> api.EventsResponse:
        """Store a batch of events durably; the users' next recommendations reflect them at once."""
        batch = [stored_event(e.user_id, e.item_id, e.event_type, e.timestamp, e.event_id) for e in body.events]
        stored, warnings = service.add_events(batch)
        metrics.events.inc(stored)
        return api.EventsResponse(stored=stored, duplicates=len(batch) - stored, warnings=warnings)

    @app.put("/v1/items/{item_id}", response_model=api.ItemResponse, **writes, tags=["writes"])
    def put_item(item_id: ItemIdPath, body: api.ItemIn) -> api.ItemResponse:
        """Create or fully replace an item (fields left out are cleared): encoded from its fields and
        searchable at once, on every worker. To change some fields only, use PATCH."""
        written = service.upsert_item(item_id, dict(body.fields), body.available)
        metrics.items.inc()
        return api.ItemResponse(item_id=item_id, status="created" if written.created else "updated",
                                item=written.item)

    @app.patch("/v1/items/{item_id}", response_model=api.ItemResponse, **writes, tags=["writes"])
    def patch_item(item_id: ItemIdPath, body: api.ItemPatch) -> api.ItemResponse:
        """Update some fields of a known item (a field set to null is cleared) and/or its availability; the
        rest is kept. The item is re-encoded only when a field the item tower reads changes."""
        written = service.patch_item(item_id, dict(body.fields), body.available)
        metrics.items.inc()
        return api.ItemResponse(item_id=item_id, status="updated", item=written.item)

    @app.delete("/v1/items/{item_id}", response_model=api.ItemResponse, **writes, tags=["writes"])
    def delete_item(item_id: ItemIdPath) -> api.ItemResponse:
        service.delete_item(item_id)
        return api.ItemResponse(item_id=item_id, status="deleted")

    @app.post("/v1/admin/reload", response_model=api.ReloadResponse, **writes, tags=["admin"])
    def reload(body: api.ReloadRequest | None = None) -> api.ReloadResponse:
        """Swap to a new bundle; requests in flight finish on the old one; a broken bundle is refused."""
        version, previous = service.reload(body.bundle if body else None)
        metrics.serving(version)
        return api.ReloadResponse(model_version=version, previous_model_version=previous)

    app.openapi = lambda: declared_limits(  # type: ignore[method-assign]
        app, config, service.recommender.state if service.ready else None)
    return app


ERROR_MEANINGS = {
    400: "the request body cannot be parsed (not UTF-8)",
    401: "missing or invalid X-API-Key",
    403: "writes are disabled: no API key is configured",
    404: "unknown user or item id",
    413: "request body over serving.max_body_bytes",
    422: "invalid request: the message names the field",
    429: "rate limit exceeded (see Retry-After)",
    503: "the bundle is still loading (see Retry-After)",
}


def _errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` for error statuses: all carry an `ErrorResponse` body."""
    return {status: {"model": api.ErrorResponse, "description": ERROR_MEANINGS[status]} for status in statuses}


def _filters(filters: api.RecommendationFilters) -> Filters:
    return Filters(filters.categories, filters.exclude_categories, filters.min_price, filters.max_price,
                   filters.available_only, filters.max_per_category, filters.diversity)


def _message(error: Any) -> str:
    """A validation error's message; an id with control characters is said in words, not as a regex."""
    if error.get("type") == "string_pattern_mismatch" and (error.get("ctx") or {}).get("pattern") == api.ID_PATTERN:
        return "must not contain control characters"
    return str(error.get("msg", ""))


def _add_error_handlers(app: FastAPI) -> None:
    """Every error the service raises on purpose becomes a 4xx (503 while loading) with its message."""
    def reply(status: int, message: Any, headers: dict[str, str] | None = None) -> JSONResponse:
        return JSONResponse({"detail": message}, status_code=status, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, error: RequestValidationError) -> JSONResponse:
        return reply(422, [{"field": ".".join(str(part) for part in e.get("loc", ())), "message": _message(e)}
                           for e in error.errors()])

    @app.exception_handler(AccessDenied)
    async def denied(_: Request, error: AccessDenied) -> JSONResponse:
        return reply(error.status, str(error))

    @app.exception_handler(ForyouError)
    async def refused(_: Request, error: ForyouError) -> JSONResponse:
        if isinstance(error, NotReadyError):
            return reply(503, str(error), {"Retry-After": "1"})
        if isinstance(error, OutsideBundleRootError):
            return reply(403, str(error))
        return reply(404 if isinstance(error, UnknownIdError) else 422, str(error))

    @app.exception_handler(ValueError)
    async def bad_value(_: Request, error: ValueError) -> JSONResponse:
        return reply(422, str(error))


class Observed:
    """ASGI middleware: per-client rate limit on /v1 routes, then latency and status metrics per route."""

    def __init__(self, app: ASGIApp, metrics: ServiceMetrics, limiter: RateLimiter, keys: ApiKeys) -> None:
        self.app = app
        self.metrics = metrics
        self.limiter = limiter
        self.keys = keys

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if scope["path"].startswith("/v1/"):
            headers = dict(scope.get("headers") or [])
            key = headers.get(KEY_HEADER.lower().encode(), b"").decode("latin-1")
            client = key if key and self.keys.accepts(key) else (scope.get("client") or ("unknown",))[0]
            wait = self.limiter.retry_after(client)
            if wait is not None:
                body = json.dumps({"detail": f"rate limit exceeded; retry in {wait} s"}).encode()
                await send({"type": "http.response.start", "status": 429, "headers": [
                    (b"content-type", b"application/json"), (b"retry-after", str(wait).encode()),
                    (b"content-length", str(len(body)).encode())]})
                await send({"type": "http.response.body", "body": body})
                self.metrics.requests.labels(scope["method"], "rate_limited", "429").inc()
                return
        start = time.perf_counter()
        status = 500

        async def observing_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, observing_send)
        finally:
            route = scope.get("route")
            name = getattr(route, "path", "unmatched")
            self.metrics.latency.labels(scope["method"], name).observe(time.perf_counter() - start)
            self.metrics.requests.labels(scope["method"], name, str(status)).inc()


def app_from_environment() -> FastAPI:
    """The app of `foryou serve`, built in each uvicorn worker from FORYOU_SERVE_SETTINGS (JSON). One compute
    thread per worker (torch, BLAS, OpenMP for LightGBM, faiss): a request is small, and threads of several
    requests would only contend (scale with --workers)."""
    from foryou.resources import limit_threads

    logging.basicConfig(level=logging.INFO, format=LOG_FORMAT)  # a worker process: its own log handler
    limit_threads(1)
    settings = json.loads(os.environ[SETTINGS_ENV])
    return create_app(Path(settings["bundle"]), ServingConfig.model_validate(settings["config"]),
                      settings["store_url"], settings["api_keys"], exit_on_load_failure=True,
                      runtime_dir=Path(settings["runtime_dir"]))
