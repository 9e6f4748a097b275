"""The playground page (GET /) in headless Chromium against a real `foryou serve` process on the shop bundle.

Needs Debian's chromium and chromedriver (`make setup` installs them); without them the test is skipped.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.headless_chromium import chromium_session

pytestmark = pytest.mark.browser

API_KEY = "playground-test-key"
WAIT_S = 20


@pytest.fixture
def browser() -> Iterator[Any]:
    with chromium_session("--window-size=1280,1100") as driver:
        yield driver


@pytest.fixture
def server(shop_bundle: Path, tmp_path: Path) -> Iterator[str]:
    """`foryou serve` on a copy of the shop bundle (its store beside it, in tmp_path); yields the base URL."""
    bundle = shutil.copytree(shop_bundle, tmp_path / "bundle")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = int(probe.getsockname()[1])
    log = (tmp_path / "serve.log").open("w")
    process = subprocess.Popen([str(Path(sys.executable).parent / "foryou"), "serve", str(bundle), "--port",
                                str(port)], env={**os.environ, "FORYOU_API_KEYS": API_KEY},
                               stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while not _ready(base):
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"foryou serve did not become ready:\n{(tmp_path / 'serve.log').read_text()[-2000:]}")
            time.sleep(0.2)
        yield base
    finally:
        process.terminate()
        process.wait(timeout=30)
        log.close()


def _ready(base: str) -> bool:
    try:
        return httpx.get(f"{base}/readyz", timeout=2).status_code == 200
    except httpx.TransportError:
        return False


def test_playground_feed_click_new_item_and_similar(browser: Any, server: str) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    def until(condition: Callable[[], Any], what: str) -> Any:
        return WebDriverWait(browser, WAIT_S).until(lambda _: condition(), message=f"waiting for {what}")

    def ids(list_id: str) -> list[str]:
        return browser.execute_script(
            f"return [...document.querySelectorAll('#{list_id} li[data-item-id]')].map(li => li.dataset.itemId)")

    def status() -> tuple[str, str]:
        element = browser.find_element(By.ID, "status")
        return element.get_attribute("data-state"), element.text

    def fill(element_id: str, value: str) -> None:
        element = browser.find_element(By.ID, element_id)
        element.clear()
        element.send_keys(value)

    browser.get(server + "/")
    until(lambda: browser.find_element(By.TAG_NAME, "body").get_attribute("data-ready") == "true", "the catalog")
    options = [o.get_attribute("value") for o in browser.find_elements(By.CSS_SELECTOR, "#strategy option")]
    assert {"two_tower", "popular"} <= set(options)

    # u0 buys jewellery: the feed shows jewellery titles, scores and reasons in words.
    fill("user", "u0")
    browser.find_element(By.ID, "load").click()
    feed = until(lambda: ids("feed"), "u0's feed")
    first = browser.find_element(By.CSS_SELECTOR, f'#feed li[data-item-id="{feed[0]}"]')
    assert "Gold Hoop Earrings" in first.find_element(By.CLASS_NAME, "title").text
    assert "Jewellery" in first.find_element(By.CLASS_NAME, "facts").text
    float(first.find_element(By.CLASS_NAME, "score").text)
    assert first.find_element(By.CSS_SELECTOR, ".reasons li").text.strip()

    # A click without a key is refused, and the page says why; with the key, the viewed item leaves the feed.
    first.click()
    until(lambda: status()[0] == "error", "the refused write")
    assert "API key" in status()[1]
    fill("api-key", API_KEY)
    browser.find_element(By.CSS_SELECTOR, f'#feed li[data-item-id="{feed[0]}"]').click()
    until(lambda: (now := ids("feed")) and feed[0] not in now, "the feed without the viewed item")
    assert status()[0] == "ok", status()[1]
    history = httpx.get(f"{server}/v1/users/u0/history").json()["events"]
    assert {"item_id": feed[0], "source": "live"} in [{k: e[k] for k in ("item_id", "source")} for e in history]

    # A new item is searchable at once: it shows among the items similar to a jewellery item.
    fill("new-item-id", "new-ring")
    fill("new-item-title", "Gold Hoop Earrings deluxe")
    fill("new-item-category", "Jewellery")
    fill("new-item-price", "45")
    browser.find_element(By.ID, "add-item").click()
    until(lambda: "new-ring created" in status()[1], "the new item to be saved")
    fill("similar-of", "jew0")
    fill("similar-k", "30")
    browser.find_element(By.ID, "show-similar").click()
    until(lambda: "new-ring" in ids("similar-list"), "the new item among jew0's similar items")

    # After saving another item, "Show similar" shows items like the one just saved (not the previous item).
    fill("new-item-id", "new-ring-2")
    browser.find_element(By.ID, "add-item").click()
    until(lambda: "new-ring-2 created" in status()[1], "the second item to be saved")
    assert browser.find_element(By.ID, "similar-of").get_attribute("value") == "new-ring-2"
    browser.find_element(By.ID, "show-similar").click()
    until(lambda: "similar to new-ring-2" in status()[1], "items similar to the saved item")
    assert "new-ring" in ids("similar-list") and "new-ring-2" not in ids("similar-list")

    # "unavailable" PATCHes availability only: the item leaves every list and keeps its title.
    browser.find_element(By.CSS_SELECTOR, '#similar-list li[data-item-id="new-ring"] [data-testid="unavailable-link"]'
                         ).click()
    until(lambda: "new-ring is unavailable" in status()[1], "the PATCH to be acknowledged")
    browser.find_element(By.ID, "show-similar").click()
    until(lambda: (now := ids("similar-list")) and "new-ring" not in now, "the list without the unavailable item")
    patched = httpx.patch(f"{server}/v1/items/new-ring", json={"available": True}, headers={"X-API-Key": API_KEY})
    assert patched.json()["item"]["title"] == "Gold Hoop Earrings deluxe"
