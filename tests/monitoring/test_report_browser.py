"""The HTML report in a real headless browser: it renders offline and asks for nothing."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.browser


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
