"""The HTML report in a real headless browser: it renders offline and asks for nothing."""

from __future__ import annotations

import shutil

import pytest

pytestmark = pytest.mark.browser

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver")


@pytest.fixture
def browser(tmp_path):
    if not (CHROMIUM and DRIVER):
        pytest.skip(
            "chromium and chromium-driver are not installed (make test installs them as root)"
        )
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-dev-shm-usage",
        f"--user-data-dir={tmp_path / 'profile'}",
        "--window-size=1200,2400",
    ):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"performance": "ALL"})
    driver = webdriver.Chrome(service=Service(DRIVER), options=options)
    yield driver
    driver.quit()


def test_report_renders_table_and_charts_without_network(browser, cli, frame, tmp_path):
    import json

    from selenium.webdriver.common.by import By

    frame(3000, seed=1).to_parquet(tmp_path / "b.parquet")
    frame(3000, seed=2, age_shift=8, new_plan=0.3).to_parquet(tmp_path / "c.parquet")
    html = tmp_path / "report.html"
    result = cli(
        "monitor",
        "drift",
        "--baseline",
        tmp_path / "b.parquet",
        "--current",
        tmp_path / "c.parquet",
        "--html",
        html,
    )
    assert result.exit_code == 1

    browser.get_log("performance")  # drop the browser's own start-up traffic
    browser.get(html.as_uri())
    assert browser.title.startswith("flowship monitor")
    rows = browser.find_elements(By.CSS_SELECTOR, "#drift-columns tbody tr")
    assert [r.find_element(By.TAG_NAME, "td").text for r in rows][:2] in (
        ["plan", "age"],
        ["age", "plan"],
    )
    statuses = [r.find_elements(By.TAG_NAME, "td")[2].text for r in rows]
    assert statuses[:2] == ["drift", "drift"] and statuses[-1] == "ok"
    charts = browser.find_elements(By.CSS_SELECTOR, "svg.bars")
    assert len(charts) == 2
    assert all(c.size["width"] > 600 and c.size["height"] > 200 for c in charts)
    bars = charts[0].find_elements(By.TAG_NAME, "rect")
    assert len(bars) >= 8 and any(float(b.get_attribute("height")) > 50 for b in bars)

    requests = [
        json.loads(entry["message"])["message"]
        for entry in browser.get_log("performance")
        if "Network.requestWillBeSent" in entry["message"]
    ]
    urls = [r["params"]["request"]["url"] for r in requests]
    assert html.as_uri() in urls
    assert not [u for u in urls if not u.startswith(("file:", "chrome:", "data:"))], urls
    shot = tmp_path / "report.png"
    browser.save_screenshot(str(shot))
    assert shot.stat().st_size > 10_000
