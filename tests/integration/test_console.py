"""The web console (streams/worker/console.py) in a real browser: Debian's Chromium driven by
Selenium through Debian's chromedriver (nothing downloaded), against a real worker and broker.
The overview's counts move as events arrive, a user's page shows the items of their last
record and the recent items behind each, an item's page its statistics, and a wrong token gets
401 and no data.

``make test`` installs Chromium where it can (root on Debian); elsewhere these tests skip, but
never under ``CI=true``. With ``STREAMREC_CONSOLE_SCREENSHOTS=DIR`` each page is saved there
as a PNG (docs/img/console-*.png are of ``streamrec demo --stay``'s console, user u7)."""

from __future__ import annotations

import os
import secrets
import urllib.error
from pathlib import Path

import pytest
from pydantic import SecretStr

from core.generator import GeneratorConfig, generate
from streams.settings import Settings
from streams.tools.cluster import fetch_json, wait_for, wait_until_ready
from tests.helpers import event_messages, produce

pytestmark = pytest.mark.integration

CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
PAGE_WAIT_S = 60  # the overview reads /stats/ every 2 s; a worker applies a small batch in less


@pytest.fixture
def browser():
    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        if os.environ.get("CI"):
            pytest.fail("CI runs the browser tests: make test installs chromium and "
                        "chromium-driver (apt-get, as root)")  # fmt: skip
        pytest.skip("no Chromium here: apt-get install chromium chromium-driver")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                     "--window-size=1200,1000"):  # fmt: skip
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    yield driver
    driver.quit()


def text_of(driver, element_id: str) -> str | None:
    """The element's text, or None while the page has not drawn it. Read in one script, so a
    redraw between finding the element and reading it cannot leave a stale reference."""
    return driver.execute_script(
        "const e = document.getElementById(arguments[0]); return e ? e.innerText : null;",
        element_id)


def waited(driver, condition, what: str):
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, PAGE_WAIT_S, poll_frequency=0.1).until(
        lambda d: condition(d), message=f"the console never showed {what}")


def rows(driver, table_id: str) -> list[list[str]]:
    """The cells' text of a table the console drew, header row left out; read in one script."""
    return driver.execute_script(
        "return [...document.getElementById(arguments[0]).rows].slice(1)"
        ".map((row) => [...row.cells].map((cell) => cell.innerText));", table_id)


def answers(driver) -> int:
    """How many answers from the worker the page has had (it counts them on ``<body>``)."""
    return int(driver.find_element("tag name", "body").get_attribute("data-answers") or 0)


def give_token(driver, token: str) -> None:
    """Type ``token`` into the page's form and wait for the worker's answer to it."""
    from selenium.webdriver.common.by import By

    before = answers(driver)
    field = driver.find_element(By.ID, "token")
    field.clear()
    field.send_keys(token)
    driver.find_element(By.ID, "token-save").click()
    waited(driver, lambda d: answers(d) > before, "the worker's answer to a token")


def item_positives(base: str, item: str, token: SecretStr) -> int | None:
    """The item's positive feedback as the worker counts it, None before its first."""
    try:
        return fetch_json(f"{base}/items/{item}/stats", token=token)["positives"]
    except urllib.error.HTTPError:
        return None


def screenshot(driver, name: str) -> None:
    where = os.environ.get("STREAMREC_CONSOLE_SCREENSHOTS")
    if where:
        Path(where).mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(Path(where) / f"console-{name}.png"))


def test_the_console_shows_the_pipeline_a_user_and_why_behind_the_token(
        settings: Settings, workers, browser):  # fmt: skip
    token = secrets.token_urlsafe(24)
    settings = settings.model_copy(update={"api_token": SecretStr(token)})
    worker = workers(settings)
    wait_until_ready(settings.web_port, timeout=90, process=worker, token=settings.api_token)
    base = f"http://127.0.0.1:{settings.web_port}"

    browser.get(base + "/console/")  # no token yet: the page asks for one and shows nothing
    waited(browser, lambda d: d.find_element("id", "login").is_displayed(), "the token form")
    give_token(browser, "wrong-" + secrets.token_urlsafe(8))
    assert browser.find_element("id", "login").is_displayed()
    assert text_of(browser, "applied") is None and browser.find_element("id", "view").text == ""
    refused = browser.execute_async_script(
        "fetch('/stats/', {headers: {Authorization: 'Bearer nope'}})"
        ".then(r => r.text().then(t => arguments[0]([r.status, t])))")
    assert refused[0] == 401 and "applied" not in refused[1]

    give_token(browser, token)
    waited(browser, lambda d: text_of(d, "applied") == "0", "the overview before any event")
    events = generate(GeneratorConfig(n_users=4, n_items=200, events_per_user=6, seed=11))
    produce(settings, event_messages(events))
    waited(browser, lambda d: text_of(d, "applied") == str(len(events)), "every event applied")
    assert text_of(browser, "records-out") == str(len(events))
    assert text_of(browser, "model-version") == fetch_json(
        base + "/stats/", token=settings.api_token)["model_version"]
    screenshot(browser, "overview")

    user = events[-1].user_id
    browser.get(f"{base}/console/#/users/{user}")
    waited(browser, lambda d: text_of(d, "user-id") == user and d.find_elements("id", "user-recs"),
           "the user's page")  # fmt: skip
    record = fetch_json(f"{base}/users/{user}/recommendations", token=settings.api_token)
    shown = rows(browser, "user-recs")
    assert [row[1] for row in shown] == [item["item_id"] for item in record["items"]]
    for row, item in zip(shown, record["items"]):
        assert row[3] == ", ".join(f"{b['item_id']} ({b['weight']:.2f})" for b in item["because"])
        assert row[4] == item["source"]
    interest = fetch_json(f"{base}/users/{user}/interest", token=settings.api_token)
    assert [row[0] for row in rows(browser, "user-recent")] == interest["recent"][::-1]
    screenshot(browser, "user")

    item = interest["recent"][-1]
    positives = sum(e.item_id == item and settings.interest.weight(e) > 0 for e in events)
    wait_for(lambda: item_positives(base, item, settings.api_token) == positives, 60,
             "the item path to count the item's events")
    browser.find_element("link text", item).click()  # from the user's page to the item's
    waited(browser, lambda d: text_of(d, "item-id") == item and d.find_elements("id", "item-stats"),
           "the item's page")  # fmt: skip
    stats = fetch_json(f"{base}/items/{item}/stats", token=settings.api_token)
    assert dict(rows(browser, "item-stats"))["positive feedback"] == str(stats["positives"])
    screenshot(browser, "item")

    browser.get(f"{base}/console/#/users/nobody-{secrets.token_hex(4)}")
    waited(browser, lambda d: d.find_elements("id", "user-missing"), "an unknown user's note")
