"""The service as it runs in production: a real `foryou serve` (uvicorn) process over HTTP.

Load (10,000 recommendations at concurrency 32, through wrk when installed), kill -9 during event ingestion
(no acknowledged event lost), hot reload under load (no failed request) and restart (events and upserted
items kept). Each server runs on its own copy of the shop bundle, so its own store (`service.db` beside it).
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest
from tests.serving.shop import item_rows

KEY = "process-test-key"
WRITE = {"X-API-Key": KEY}
READY_TIMEOUT_S, READY_STREAK = 60, 20
READY_LINE = "ready: serving"  # what each worker logs once its bundle is loaded
K = 10
LOAD_REQUESTS, LOAD_CONCURRENCY = 10_000, 32
WRK = shutil.which("wrk")
ITEMS = [item for item, _, _, _ in item_rows()]
# The load mix: known users, raw interactions only, both, with and without reasons.
RECOMMEND_BODIES = [
    {"user_id": "u1", "k": K},
    {"user_id": "u2", "k": K, "explain": True},
    {"user_id": "u40", "k": K, "strategy": "collab"},
    {"interactions": [{"item_id": "jew1", "event_type": "purchase"}, {"item_id": "jew2"}], "k": K,
     "explain": True},
    {"user_id": "u7", "interactions": [{"item_id": "kit3"}], "k": K},
    {"user_id": "u11", "k": K, "filters": {"max_price": 30.0}},
    {"interactions": [{"item_id": "hom4"}], "k": K, "strategy": "content"},
    {"user_id": "u3", "k": K, "explain": True, "strategy": "popular"},
]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Server:
    """One `foryou serve` process on a free port; ready once every worker has logged that it serves the bundle
    and /readyz answers 200 READY_STREAK times in a row (each connection may land on any worker, so a streak of
    200s alone does not prove that all of them are ready).
    `kill` is a kill -9 of the whole service with one worker (several: of the supervisor only)."""

    def __init__(self, bundle: Path, log: Path, workers: int = 1, settings: tuple[str, ...] = ()) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log
        self.workers = workers
        command = [sys.executable, "-c", "from foryou.cli import app; app()", "serve", str(bundle),
                   "--port", str(self.port), "--workers", str(workers),
                   "--set", "serving.rate_limit_per_minute=1000000",
                   *(part for setting in settings for part in ("--set", setting))]
        with log.open("wb") as output:
            self.process = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT,
                                            env={**os.environ, "FORYOU_API_KEYS": KEY})

    def wait_ready(self) -> None:
        deadline, streak = time.monotonic() + READY_TIMEOUT_S, 0
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(f"foryou serve exited with {self.process.returncode}:\n{self.output()}")
            try:
                streak = streak + 1 if httpx.get(f"{self.url}/readyz", timeout=2).status_code == 200 else 0
            except httpx.TransportError:
                streak = 0
            if streak >= READY_STREAK and self.output(whole=True).count(READY_LINE) >= self.workers:
                return
            if streak == 0 or streak >= READY_STREAK:  # loading, or waiting for the other workers
                time.sleep(0.2)
        self.stop()
        pytest.fail(f"foryou serve not ready after {READY_TIMEOUT_S} s:\n{self.output()}")

    def output(self, whole: bool = False) -> str:
        text = self.log.read_text(errors="replace")
        return text if whole else text[-5000:]

    def kill(self) -> None:
        """SIGKILL: no shutdown code runs."""
        self.process.kill()
        self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill()


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Callable[..., Server]]:
    """Starts servers on bundles (waiting until ready) and stops every one at the end of the test."""
    servers: list[Server] = []

    def start(bundle: Path, workers: int = 1, settings: tuple[str, ...] = ()) -> Server:
        server = Server(bundle, tmp_path / f"server-{len(servers)}.log", workers, settings)
        servers.append(server)
        server.wait_ready()
        return server

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def bundle(shop_bundle: Path, tmp_path: Path) -> Path:
    """A private copy of the shop bundle: its store is tmp_path/a/service.db."""
    return Path(shutil.copytree(shop_bundle, tmp_path / "a" / "bundle"))


# ---- 1. load -----------------------------------------------------------------------------------------------
WRK_SCRIPT = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local bodies = {%(bodies)s}
local quota, k = %(quota)d, %(k)d
sent, answered, non_2xx, bad_body = 0, 0, 0, 0
local threads = {}

function setup(thread)
  table.insert(threads, thread)
  thread:set("id", #threads)
end

function request()
  sent = sent + 1
  return wrk.format(nil, "/v1/recommendations", nil, bodies[sent %% #bodies + 1])
end

function response(status, headers, body)
  answered = answered + 1
  if status < 200 or status > 299 then
    non_2xx = non_2xx + 1
  else
    local _, items = string.gsub(body, '"rank":', "")
    if items ~= k or string.sub(body, 1, 1) ~= "{" or string.sub(body, -1) ~= "}" then
      bad_body = bad_body + 1
    end
  end
  if answered == quota then  -- this thread is done: say so (the test then stops wrk with SIGINT)
    io.open(string.format("%(markers)s/%%d", id), "w"):close()
    wrk.thread:stop()
  end
end

function done(summary, latency, requests)
  local total = {answered = 0, non_2xx = 0, bad_body = 0}
  for _, thread in ipairs(threads) do
    for name, _ in pairs(total) do total[name] = total[name] + thread:get(name) end
  end
  local e = summary.errors
  io.write(string.format('WRK_RESULT {"requests": %%d, "answered": %%d, "non_2xx": %%d, "bad_body": %%d, ' ..
    '"errors": %%d, "seconds": %%.2f, "p99_ms": %%.1f}\\n', summary.requests, total.answered, total.non_2xx,
    total.bad_body, e.connect + e.read + e.write + e.status + e.timeout, summary.duration / 1e6,
    latency:percentile(99) / 1e3))
end
"""


def run_wrk(server: Server, workdir: Path, threads: int = 4) -> dict[str, Any]:
    """wrk until every thread has its share of LOAD_REQUESTS answers, then SIGINT (wrk reports and exits)."""
    markers, script = workdir / "wrk-done", workdir / "load.lua"
    markers.mkdir()
    script.write_text(WRK_SCRIPT % {"bodies": ", ".join(f"[[{json.dumps(b)}]]" for b in RECOMMEND_BODIES),
                                    "quota": math.ceil(LOAD_REQUESTS / threads), "k": K, "markers": markers})
    wrk = subprocess.Popen([str(WRK), f"-t{threads}", f"-c{LOAD_CONCURRENCY}", "-d300s", "--timeout", "30s",
                            "-s", str(script), f"{server.url}/v1/recommendations"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    while wrk.poll() is None and len(list(markers.iterdir())) < threads and server.process.poll() is None:
        time.sleep(0.1)
    wrk.send_signal(signal.SIGINT)
    stdout, stderr = wrk.communicate(timeout=60)
    line = next((line for line in stdout.splitlines() if line.startswith("WRK_RESULT ")), None)
    assert line is not None, f"wrk printed no result:\n{stdout}\n{stderr}"
    return dict(json.loads(line.removeprefix("WRK_RESULT ")))


async def run_httpx(url: str) -> dict[str, Any]:
    """The same load without wrk: 32 asyncio tasks sharing one connection pool."""
    counts: Counter[str] = Counter()
    next_request = iter(range(LOAD_REQUESTS))
    started = time.perf_counter()

    async def worker(client: httpx.AsyncClient) -> None:
        for n in next_request:
            try:
                body = RECOMMEND_BODIES[n % len(RECOMMEND_BODIES)]
                response = await client.post("/v1/recommendations", json=body)
            except httpx.HTTPError:
                counts["errors"] += 1
                continue
            counts["answered"] += 1
            if not response.is_success:
                counts["non_2xx"] += 1
            elif len(response.json()["items"]) != K:
                counts["bad_body"] += 1

    limits = httpx.Limits(max_connections=LOAD_CONCURRENCY)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=30) as client:
        await asyncio.gather(*(worker(client) for _ in range(LOAD_CONCURRENCY)))
    return {"requests": counts["answered"], "answered": counts["answered"], "non_2xx": counts["non_2xx"],
            "bad_body": counts["bad_body"], "errors": counts["errors"],
            "seconds": time.perf_counter() - started}


@pytest.mark.slow
def test_ten_thousand_recommendations_at_concurrency_32_without_an_error(
        serve: Callable[..., Server], bundle: Path, tmp_path: Path) -> None:
    server = serve(bundle, workers=2)  # one per core: the load is CPU-bound
    for body in RECOMMEND_BODIES:  # every body of the mix is a full, valid answer (wrk only counts items)
        response = httpx.post(f"{server.url}/v1/recommendations", json=body, timeout=30)
        assert response.status_code == 200, response.text
        answer = response.json()
        assert [item["rank"] for item in answer["items"]] == list(range(1, K + 1))
        assert all(item["reasons"] for item in answer["items"]) == bool(body.get("explain"))
    result = run_wrk(server, tmp_path) if WRK else asyncio.run(run_httpx(server.url))
    print(f"load ({'wrk' if WRK else 'httpx'}): {result}")
    assert result["requests"] >= LOAD_REQUESTS and result["answered"] >= LOAD_REQUESTS, result
    assert result["non_2xx"] == 0 and result["bad_body"] == 0 and result["errors"] == 0, result
    assert server.process.poll() is None, server.output()


# ---- 2. kill -9 during ingestion ---------------------------------------------------------------------------
EPOCH = datetime(2024, 1, 1, tzinfo=timezone.utc)
WRITERS, EVENTS_PER_BATCH, KILL_AFTER_EVENTS = 4, 10, 400


def event_batch(writer: int, batch: int) -> list[dict[str, Any]]:
    """Events with unique ids and unique timestamps, spread over the writer's users (one per slot)."""
    first = writer * 1_000_000 + batch * EVENTS_PER_BATCH
    return [{"user_id": f"w{writer}-user{slot}", "item_id": ITEMS[(batch + slot) % len(ITEMS)],
             "event_type": "view", "event_id": f"w{writer}-b{batch}-e{slot}",
             "timestamp": (EPOCH + timedelta(seconds=first + slot)).isoformat()}
            for slot in range(EVENTS_PER_BATCH)]


def ingest(url: str, writer: int, acknowledged: list[dict[str, Any]], refused: list[str],
           stop: threading.Event) -> None:
    """POST batches until the server goes away; every batch answered 2xx goes into `acknowledged`."""
    with httpx.Client(base_url=url, headers=WRITE, timeout=30) as client:
        for batch in range(10_000):
            if stop.is_set():
                return
            events = event_batch(writer, batch)
            try:
                response = client.post("/v1/events", json={"events": events})
            except httpx.TransportError:
                return  # killed
            if response.is_success:
                acknowledged.extend(events)
            else:
                refused.append(f"{response.status_code}: {response.text}")


def live_events(url: str, users: set[str]) -> set[tuple[str, str, datetime]]:
    """(user, item, timestamp) of every live event the server returns in the users' histories."""
    found = set()
    with httpx.Client(base_url=url, timeout=30) as client:
        for user in sorted(users):
            response = client.get(f"/v1/users/{user}/history")
            assert response.status_code == 200, f"{user}: {response.status_code} {response.text}"
            found |= {(user, e["item_id"], datetime.fromisoformat(e["timestamp"].replace("Z", "+00:00")))
                      for e in response.json()["events"] if e["source"] == "live"}
    return found


def test_kill_9_during_ingestion_loses_no_acknowledged_event(serve: Callable[..., Server],
                                                             bundle: Path) -> None:
    server = serve(bundle)
    acknowledged: list[dict[str, Any]] = []
    refused: list[str] = []
    stop = threading.Event()
    writers = [threading.Thread(target=ingest, args=(server.url, w, acknowledged, refused, stop))
               for w in range(WRITERS)]
    for thread in writers:
        thread.start()
    deadline = time.monotonic() + 60
    while len(acknowledged) < KILL_AFTER_EVENTS and time.monotonic() < deadline and not refused:
        time.sleep(0.01)
    server.kill()  # mid-stream: every writer has a request in flight or about to be sent
    stop.set()
    for thread in writers:
        thread.join(timeout=60)
    assert not refused, refused[:3]
    assert len(acknowledged) >= KILL_AFTER_EVENTS

    restarted = serve(bundle)
    expected = {(e["user_id"], e["item_id"], datetime.fromisoformat(e["timestamp"])) for e in acknowledged}
    found = live_events(restarted.url, {e["user_id"] for e in acknowledged})
    print(f"kill -9: {len(expected)} events acknowledged, {len(found)} found after restart")
    lost = expected - found
    assert not lost, f"{len(lost)} of {len(expected)} acknowledged events lost, e.g. {sorted(lost)[:5]}"


# ---- 3. reload under load ----------------------------------------------------------------------------------
def recommend_continuously(url: str, stop: threading.Event, versions: Counter[str], failures: list[str],
                           catalogs: dict[str, set[str]]) -> None:
    """POST recommendations until `stop`; count answers per model version, note every failure and every answer
    with an item that the catalog of the version it names does not hold (a request that mixed two bundles)."""
    with httpx.Client(base_url=url, timeout=30) as client:
        n = 0
        while not stop.is_set():
            body = RECOMMEND_BODIES[n % len(RECOMMEND_BODIES)]
            n += 1
            try:
                response = client.post("/v1/recommendations", json=body)
            except httpx.HTTPError as error:
                failures.append(f"{type(error).__name__}: {error}")
                continue
            if response.status_code != 200 or len(response.json()["items"]) != K:
                failures.append(f"{response.status_code}: {response.text[:300]}")
                continue
            answer = response.json()
            foreign = {item["item_id"] for item in answer["items"]} - catalogs[answer["model_version"]]
            if foreign:
                failures.append(f"{answer['model_version']} answered items of another bundle: {sorted(foreign)}")
            versions[answer["model_version"]] += 1


@pytest.fixture(scope="module")
def other_shop_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A bundle of another shop: every item and user id differs from the shop bundle's."""
    from tests.serving.shop import build_shop_bundle

    return build_shop_bundle(tmp_path_factory.mktemp("other-shop"), prefix="b-")


def catalog_of(bundle: Path) -> set[str]:
    return {str(item) for item in pd.read_parquet(bundle / "items.parquet")["item_id"]}


def test_reload_between_two_shops_under_load_mixes_nothing(serve: Callable[..., Server], bundle: Path,
                                                           other_shop_bundle: Path, tmp_path: Path) -> None:
    other = Path(shutil.copytree(other_shop_bundle, tmp_path / "b" / "bundle"))
    first = json.loads((bundle / "bundle.json").read_text())["model_version"]
    second = json.loads((other / "bundle.json").read_text())["model_version"]
    assert first != second and catalog_of(bundle).isdisjoint(catalog_of(other))
    catalogs = {first: catalog_of(bundle), second: catalog_of(other)}
    server = serve(bundle, settings=(f"serving.bundle_root={tmp_path}",))

    stop, versions, failures = threading.Event(), Counter[str](), list[str]()
    clients = [threading.Thread(target=recommend_continuously, args=(server.url, stop, versions, failures,
                                                                     catalogs)) for _ in range(4)]
    for thread in clients:
        thread.start()
    try:
        with httpx.Client(base_url=server.url, headers=WRITE, timeout=60) as admin:
            for target, version in [(other, second), (bundle, first), (None, first), (other, second),
                                    (None, second), (bundle, first)] * 2:
                time.sleep(0.2)
                relative = str(target.relative_to(tmp_path)) if target else None
                response = admin.post("/v1/admin/reload", json={"bundle": relative} if target else None)
                assert response.status_code == 200, response.text
                assert response.json()["model_version"] == version
            time.sleep(0.3)
    finally:
        stop.set()
        for thread in clients:
            thread.join(timeout=60)
    print(f"reload under load: {versions.total()} answered, {len(failures)} failed, {dict(versions)}")
    assert not failures, failures[:5]
    assert versions[first] > 0 and versions[second] > 0, versions


# ---- 4. restart --------------------------------------------------------------------------------------------
def test_restart_keeps_ingested_events_and_upserted_items(serve: Callable[..., Server], bundle: Path) -> None:
    server = serve(bundle)
    with httpx.Client(base_url=server.url, headers=WRITE, timeout=30) as client:
        item = {"fields": {"title": "Steel Whisk Deluxe", "category": "Kitchen", "price": 12.5}}
        assert client.put("/v1/items/newX", json=item).json()["status"] == "created"
        events = [{"user_id": "newcomer", "item_id": item_id, "event_id": f"restart-{n}",
                   "timestamp": (EPOCH + timedelta(hours=n)).isoformat()}
                  for n, item_id in enumerate(["kit1", "newX", "kit2"])]
        assert client.post("/v1/events", json={"events": events}).json()["stored"] == 3
        before = client.get("/v1/items/kit1/similar", params={"k": len(ITEMS)}).json()
    server.stop()

    restarted = serve(bundle)
    with httpx.Client(base_url=restarted.url, timeout=30) as client:
        history = client.get("/v1/users/newcomer/history").json()
        assert [(e["item_id"], e["source"]) for e in history["events"]] == [
            ("kit1", "live"), ("newX", "live"), ("kit2", "live")]
        similar = client.get("/v1/items/newX/similar", params={"k": 5})
        assert similar.status_code == 200 and len(similar.json()["items"]) == 5, similar.text
        after = client.get("/v1/items/kit1/similar", params={"k": len(ITEMS)}).json()
        assert "newX" in [i["item_id"] for i in after["items"]]
        assert [i["item_id"] for i in after["items"]] == [i["item_id"] for i in before["items"]]
        recommended = client.post("/v1/recommendations", json={"user_id": "newcomer", "k": K}).json()
        assert {"kit1", "newX", "kit2"}.isdisjoint(i["item_id"] for i in recommended["items"])  # seen


# ---- 5. two workers: one server ----------------------------------------------------------------------------
def metric_total(text: str, name: str, **labels: str) -> float:
    """The sum of a metric's samples whose labels include `labels`, from the Prometheus text format."""
    total = 0.0
    for line in text.splitlines():
        if line.startswith((name + "{", name + " ")) and all(f'{key}="{value}"' in line
                                                             for key, value in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


def test_two_workers_act_as_one_server(serve: Callable[..., Server], bundle: Path) -> None:
    """A new item is found by every worker right after the 2xx; metrics and the rate limit are the server's."""
    server = serve(bundle, workers=2, settings=("serving.rate_limit_per_minute=60",))
    started = time.monotonic()
    with httpx.Client(base_url=server.url, headers=WRITE, timeout=30) as client:
        assert client.delete("/v1/items/hom1").status_code == 200  # an earlier write leaves a tombstone
        assert client.get("/v1/items/jew0/similar", params={"k": 200}).status_code == 200
        item = {"fields": {"title": "Gold Hoop Earrings 99", "category": "Jewellery", "price": 41.5}}
        assert client.put("/v1/items/jew99", json=item).status_code == 200
        # a new connection each: the kernel hands them to either worker
        found = [httpx.get(f"{server.url}/v1/items/jew0/similar", params={"k": 200}, timeout=30).json()
                 for _ in range(20)]
        assert all("jew99" in [i["item_id"] for i in answer["items"]] for answer in found), \
            "a worker left the new item out right after the 2xx"
        scrapes = [client.get("/metrics").text for _ in range(6)]  # each may be answered by either worker
        for scrape in scrapes:
            assert metric_total(scrape, "foryou_requests_total", route="/v1/items/{item_id}/similar") == 21
            assert metric_total(scrape, "foryou_items_upserted_total") == 1
        answered = sum(client.get("/v1/noop").status_code == 200 for _ in range(200))
    elapsed = time.monotonic() - started
    used = 3  # the key's bucket gave tokens to the DELETE, one similar and the PUT (the 20 others: the address's)
    print(f"two workers at 60/min: {answered} of 200 more requests answered after {used}, in {elapsed:.1f} s")
    assert answered <= 60 - used + math.ceil(elapsed) + 1, answered
