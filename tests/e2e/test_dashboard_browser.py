"""The dashboard in a real browser: headless Debian chromium, driven by Playwright, loads it from an
``ApiServer`` while posts keep arriving through the real sinks (Redis and the ClickHouse server),
signs in through the header's token form (the token never appears in a URL the page requests),
checks that the charts draw and the numbers change without a reload, opens a new alert's evidence,
drills down from a chart point to its posts, switches the labels to the other language, and saves
a screenshot to ``test-artifacts/dashboard.png``.

The browser is Debian's ``chromium`` (tests/services/chromium.sh), never a downloaded build; without
it (or without the built dashboard) the test skips locally and fails in CI.
"""

from __future__ import annotations

import os
import threading
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlsplit, urlunsplit

import pytest
import redis
from pydantic import SecretStr

from pipeline.api.app import DASHBOARD_DIST
from pipeline.api.server import ApiServer
from pipeline.settings import Settings
from pipeline.stores.clickhouse.engines import open_engine
from pipeline.stores.clickhouse.sink import ClickHouseSink
from pipeline.stores.redis.live import RedisSink, connect, delete_prefix
from pipeline.stores.redis.subjects import SubjectStore, subject_from_options
from schemas.records import ScoredPost
from tests.support.api import ADMIN_TOKEN, TOKENS, make_alert, save_alert
from tests.support.paths import ARTIFACTS
from tests.support.records import now_minute, scored
from tests.support.require import require_service

if TYPE_CHECKING:
    from playwright.sync_api import Page, Request

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]

CHROMIUM = Path(os.environ.get("YUQING_TEST_CHROMIUM", "/usr/bin/chromium"))
SUBJECT = "云帆"
EVIDENCE_TEXT = "云帆手机电池爆炸了"
WAIT_MS = 20_000


@pytest.fixture
def browser_settings(redis_url: str, test_id: str, clickhouse_server_url: str) -> Iterator[Settings]:
    base = urlsplit(clickhouse_server_url)
    database = f"yq_browser_{uuid.uuid4().hex[:10]}"
    url = urlunsplit((base.scheme, base.netloc, f"/{database}", base.query, ""))
    settings = Settings(
        redis_url=SecretStr(redis_url),
        redis_prefix=f"yqtest-browser-{test_id}",
        clickhouse_url=SecretStr(url),
        api_tokens=SecretStr(TOKENS),
    )
    yield settings
    delete_prefix(redis.Redis.from_url(redis_url, decode_responses=True), settings.redis_prefix)
    engine = open_engine(url)
    try:
        engine.execute(f"DROP DATABASE IF EXISTS {database}")
    finally:
        engine.close()


class Feed:
    """Writes scored posts through both sinks, as the aggregate agent does, until stopped."""

    def __init__(self, settings: Settings) -> None:
        self.redis = RedisSink(settings)
        self.history = ClickHouseSink.from_url(settings.clickhouse_url.get_secret_value())
        self.sent = 0
        self.stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def write(self, posts: list[ScoredPost]) -> None:
        for sink in (self.history, self.redis):  # history first: a drill-down must find what live counted
            sink.add(posts)
            sink.flush()
        self.sent += len(posts)

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        batch = 0
        while not self.stop.wait(0.7):
            batch += 1
            posts = [
                scored(f"live-{batch}-{i}", "negative" if i else "neutral", (SUBJECT,), terms=("电池", "爆炸"))
                for i in range(3)
            ]
            # Every batch carries a copy of its first post, so the drill-down shows the flag.
            posts.append(
                scored(f"live-{batch}-copy", "negative", (SUBJECT,), duplicate=True, cluster_id=posts[0].post.id)
            )
            self.write(posts)

    def close(self) -> None:
        self.stop.set()
        if self._thread.ident is not None:  # never started when the test failed first: keep that error
            self._thread.join(10)
        self.redis.close()
        self.history.close()


def test_dashboard_renders_updates_live_and_opens_evidence(browser_settings: Settings) -> None:
    require_service(CHROMIUM.is_file(), f"no chromium at {CHROMIUM}: run tests/services/chromium.sh")
    require_service((DASHBOARD_DIST / "index.html").is_file(), "the dashboard is not built: run make dashboard")
    from playwright.sync_api import expect, sync_playwright

    settings = browser_settings
    SubjectStore(connect(settings), settings.redis_prefix).put(subject_from_options(SUBJECT, [f"{SUBJECT},Yunfan"]))
    feed = Feed(settings)
    # A quiet baseline over the last 20 minutes, so the charts have a history to draw.
    feed.write(
        [
            scored(
                f"base-{m}-{i}", "positive" if i % 2 else "neutral", (SUBJECT,), at=now_minute() - timedelta(minutes=m)
            )
            for m in range(1, 21)
            for i in range(4)
        ]
    )
    server = ApiServer(settings, "127.0.0.1", 0, heartbeat_s=1.0)
    server.start()
    ARTIFACTS.mkdir(exist_ok=True)
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
            page = browser.new_page(viewport={"width": 1400, "height": 1000}, locale="en-US")
            errors: list[str] = []
            page.on("pageerror", lambda error: errors.append(str(error)))
            requests: list[Request] = []
            page.on("request", lambda request: requests.append(request))
            try:
                _exercise(page, expect, server, settings, feed)
                assert not errors, errors
                # The token travels only in a header: no URL the page asked for (so no access log) holds it.
                assert requests
                leaked = [request.url for request in requests if ADMIN_TOKEN in request.url]
                assert not leaked, leaked
                assert any(
                    request.headers.get("authorization") == f"Bearer {ADMIN_TOKEN}"
                    for request in requests
                    if "/api/v1/session" in request.url
                )
            except BaseException:
                page.screenshot(path=str(ARTIFACTS / "dashboard-failure.png"), full_page=True)
                raise
            finally:
                browser.close()
    finally:
        feed.close()
        server.stop()


def _exercise(page: Page, expect: Any, server: ApiServer, settings: Settings, feed: Feed) -> None:
    # Without a token the API refuses and the dashboard asks for one in the header's sign-in form.
    page.goto(server.url)
    expect(page.locator("#banner")).to_contain_text("paste it into the token field", timeout=WAIT_MS)
    expect(page.locator('[data-testid="token-clear"]')).to_be_hidden()
    page.locator('[data-testid="token-input"]').fill(ADMIN_TOKEN)
    with page.expect_navigation():  # stored in sessionStorage, then the page starts again with it
        page.locator('[data-testid="token-submit"]').click()
    assert "token=" not in page.url and ADMIN_TOKEN not in page.url
    expect(page.locator('[data-testid="token-form"]')).to_be_hidden(timeout=WAIT_MS)
    expect(page.locator('[data-testid="token-clear"]')).to_be_visible()

    # The charts render: both canvases exist and have pixels drawn on them.
    for chart in ("chart-volume", "chart-negative"):
        expect(page.locator(f"#{chart} canvas")).to_have_count(1, timeout=WAIT_MS)
    page.wait_for_function(
        """() => [...document.querySelectorAll('.chart canvas')].every((c) => {
            const data = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
            let drawn = 0;
            for (let i = 3; i < data.length; i += 4) if (data[i]) drawn++;
            return c.width > 100 && drawn > 500;
        })""",
        timeout=WAIT_MS,
    )
    expect(page.locator("#live")).to_have_attribute("data-state", "live", timeout=WAIT_MS)
    page.select_option("#subject-select", SUBJECT)
    page.wait_for_function("() => document.querySelector('#stat-total').dataset.value === '80'", timeout=WAIT_MS)
    page.evaluate("() => { window.__notReloaded = true; }")

    # Numbers change as posts arrive, pushed over the stream: no reload, no polling in 30 s.
    feed.start()
    for seen_above in (80, 88):
        page.wait_for_function(
            f"() => Number(document.querySelector('#stat-total').dataset.value) > {seen_above}", timeout=WAIT_MS
        )
    assert page.evaluate("() => window.__notReloaded === true")
    assert int(page.locator('[data-testid="count-negative"]').inner_text().replace(",", "")) > 0
    expect(page.locator('[data-testid="hot-words"]')).to_contain_text("电池", timeout=WAIT_MS)

    # A new alert appears in the feed as it happens, and its evidence opens with the top post.
    save_alert(settings, make_alert("browser-alert", SUBJECT, minutes_ago=2))
    item = page.locator('[data-testid="alert-item"][data-alert-id="browser-alert"]')
    expect(item).to_be_visible(timeout=WAIT_MS)
    item.click()
    evidence = page.locator('[data-testid="evidence-panel"]')
    expect(evidence).to_be_visible(timeout=WAIT_MS)
    expect(evidence.locator('[data-testid="evidence-posts"]')).to_contain_text(EVIDENCE_TEXT)
    expect(evidence.locator('[data-testid="evidence-facts"]')).to_contain_text("negative surge")
    expect(evidence.locator('[data-testid="evidence-counts"] tbody tr')).to_have_count(2)
    page.locator('[data-testid="ack-button"]').click()  # an admin token may acknowledge
    expect(evidence.locator('[data-testid="evidence-facts"]')).to_contain_text("acknowledged by", timeout=WAIT_MS)
    page.locator("#panel-close").click()

    # Drill-down: a click on the current minute of the volume chart lists its posts, flags included.
    overlay = page.locator("#chart-volume .u-over")
    box = overlay.bounding_box()
    assert box is not None
    page.mouse.move(box["x"] + box["width"] - 3, box["y"] + box["height"] / 2)
    page.mouse.click(box["x"] + box["width"] - 3, box["y"] + box["height"] / 2)
    expect(page.locator('[data-testid="post-row"]').first).to_be_visible(timeout=WAIT_MS)
    expect(page.locator('[data-testid="flag-duplicate"]').first).to_be_visible(timeout=WAIT_MS)
    page.locator("#panel-close").click()

    # Chinese labels, then back to the alert's evidence for the screenshot.
    page.locator("#lang-toggle").click()
    expect(page.locator('h2[data-i18n="volume"]')).to_have_text("每分钟帖子数")
    page.locator('[data-testid="alert-item"][data-alert-id="browser-alert"]').click()
    expect(page.locator('[data-testid="evidence-panel"]')).to_contain_text("代表帖子", timeout=WAIT_MS)
    page.screenshot(path=str(ARTIFACTS / "dashboard.png"), full_page=True)
    assert (ARTIFACTS / "dashboard.png").stat().st_size > 10_000

    # The link an alert carries opens the dashboard on its subject with its evidence.
    page.goto(f"{server.url}/#/subject/{quote(SUBJECT)}?alert=browser-alert")
    expect(page.locator('[data-testid="evidence-panel"]')).to_contain_text(EVIDENCE_TEXT, timeout=WAIT_MS)
    expect(page.locator("#subject-select")).to_have_value(SUBJECT)

    # Signing out forgets the token and asks for one again.
    page.locator("#panel-close").click()
    with page.expect_navigation():
        page.locator('[data-testid="token-clear"]').click()
    expect(page.locator('[data-testid="token-input"]')).to_be_visible(timeout=WAIT_MS)
    assert page.evaluate("() => sessionStorage.getItem('yuqing.token')") is None
