"""A reviewer in a real browser: Debian's headless chromium driven by selenium (synchronous).

The tests call every method through ``asyncio.to_thread``: a page load waits for the server,
which may run in the test's own event loop, so a call made on the loop's thread would deadlock.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.common.exceptions import WebDriverException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.ui import WebDriverWait

CHROMIUM = shutil.which("chromium")
CHROMEDRIVER = shutil.which("chromedriver")


def require_chromium() -> None:
    """Skip, saying why, where Debian's chromium or its driver is not installed."""
    if CHROMIUM is None or CHROMEDRIVER is None:
        pytest.skip(
            "chromium and chromium-driver are not installed (scripts/install-prereqs installs "
            "them on Debian): the reviewer page's browser test needs them"
        )


class ReviewerBrowser:
    def __init__(self, base_url: str) -> None:
        assert CHROMIUM is not None
        assert CHROMEDRIVER is not None
        options = webdriver.ChromeOptions()
        options.binary_location = CHROMIUM
        for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                         "--window-size=1280,1100", "--disable-gpu"):  # fmt: skip
            options.add_argument(argument)
        # The driver's path given: selenium's manager would try to download one otherwise.
        self.driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
        self.driver.set_page_load_timeout(30)
        self.base_url = base_url.rstrip("/")

    def close(self) -> None:
        self.driver.quit()

    def open(self, path: str = "/") -> None:
        self.driver.get(self.base_url + path)

    def find(self, selector: str) -> WebElement:
        return self.driver.find_element(By.CSS_SELECTOR, selector)

    def count(self, selector: str) -> int:
        return len(self.driver.find_elements(By.CSS_SELECTOR, selector))

    def text(self) -> str:
        return str(self.driver.find_element(By.TAG_NAME, "body").text)

    def text_of(self, selector: str) -> str:
        return str(self.find(selector).text)

    def texts_of(self, selector: str) -> list[str]:
        return [str(e.text) for e in self.driver.find_elements(By.CSS_SELECTOR, selector)]

    def url(self) -> str:
        return str(self.driver.current_url)

    def submit(self, button: str) -> None:
        """Click a form's button and wait for the next page (a click does not wait for it)."""
        page = self.driver.find_element(By.TAG_NAME, "html")
        self.find(button).click()
        WebDriverWait(self.driver, 20).until(lambda _: _gone(page))

    def log_in(self, token: str) -> None:
        self.open("/login")
        self.find("#token").send_keys(token)
        self.submit("#login")

    def claim_next(self) -> str | None:
        """Claim the next case from the queue page; its case id, or None if nothing waits."""
        self.open("/")
        self.submit("#claim")
        if "/item/" not in self.driver.current_url:
            return None
        return str(self.find("#case-id").text)

    def confirm(self, attempt: int, note: str = "") -> None:
        self.find(f"#attempt-{attempt} input[name=candidate_id]").click()
        if note:
            self.find("#confirm-form textarea[name=note]").send_keys(note)
        self.submit("#confirm")

    def correct(self, text: str, note: str) -> None:
        self.find("#correct-text").send_keys(text)
        self.find("#correct-note").send_keys(note)
        self.submit("#correct")

    def unresolved(self, reason: str) -> None:
        self.find("#unresolved-note").send_keys(reason)
        self.submit("#unresolved")

    def screenshot(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        # The whole page, not only the window: the packet is taller than the screen.
        for _ in range(2):  # the window's frame takes some of its height: measure again
            height = int(self.driver.execute_script("return document.documentElement.scrollHeight"))
            self.driver.set_window_size(1280, max(560, min(height + 140, 2400)))
        assert self.driver.save_screenshot(str(path)), path
        self.driver.set_window_size(1280, 1100)


def _gone(element: WebElement) -> bool:
    """True once ``element``'s page has been replaced (the next page is loading or loaded)."""
    try:
        element.is_enabled()
    except WebDriverException:  # stale, or (mid-navigation) "does not belong to the document"
        return True
    return False
