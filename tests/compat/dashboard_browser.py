"""Drives the dashboard of a running `tern demo` in headless Chromium.

usage: dashboard_browser.py BASE_URL SCREENSHOT_DIR   (the operator token in TERN_WEB_TOKEN)

Checks, in a real browser: the topology shows the three clusters with their cloud regions and
their flows; a burst of load makes a flow lag on the flows page and the lag falls back to about
zero without a reload (the demo must burst every few seconds: --burst-every); changes are refused
without the token; after logging in, Pause stops the flow and its lag numbers grow on the page
without a reload; Resume brings the lag back down. Screenshots go to SCREENSHOT_DIR.
"""
import os
import sys
import time

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

base, shots = sys.argv[1].rstrip("/"), sys.argv[2]
token = os.environ["TERN_WEB_TOKEN"]
os.makedirs(shots, exist_ok=True)
FLOW = "us-east->eu-west"
# A burst counts when a flow is this many records behind; caught up is at most this many.
BURST_LAG = 1000
CAUGHT_UP = 50
FLOW_PATH = "/flows/us-east-%3Eeu-west"

options = webdriver.ChromeOptions()
options.binary_location = "/usr/bin/chromium"
for arg in ["--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1400,1100", "--disable-gpu"]:
    options.add_argument(arg)
driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
# htmx swaps the live part every few seconds: elements found before a swap go stale.
wait = WebDriverWait(driver, 60, poll_frequency=0.2, ignored_exceptions=[StaleElementReferenceException])


def shot(name):
    path = os.path.join(shots, name)
    driver.save_screenshot(path)
    print("screenshot", path)


def texts(selector):
    """Text of every match, read in one step so that a swap in between cannot interfere."""
    return driver.execute_script("return [...document.querySelectorAll(arguments[0])].map(e => e.textContent.trim())", selector)


def text(selector):
    found = texts(selector)
    assert found, f"nothing matches {selector}"
    return found[0]


def lag():
    return int(text("#flow-lag-records"))


def post_status(path, headers=None):
    """Status of a POST made by the page itself (same origin, the browser's cookies)."""
    return driver.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "fetch(arguments[0], {method: 'POST', headers: arguments[1] || {}}).then(r => done(r.status), e => done(String(e)));",
        path,
        headers,
    )


try:
    # Topology: three clusters with their broker counts, three flows.
    driver.get(base + "/")
    wait.until(lambda d: texts("svg#topology g.cluster text.brokers") == ["1 broker"] * 3)
    clusters = sorted(e.get_attribute("data-cluster") for e in driver.find_elements(By.CSS_SELECTOR, "svg#topology g.cluster"))
    assert clusters == ["ap-south", "eu-west", "us-east"], clusters
    flows = sorted(e.get_attribute("data-flow") for e in driver.find_elements(By.CSS_SELECTOR, "svg#topology a.flow-edge"))
    assert flows == ["eu-west->us-east", "us-east->ap-south", "us-east->eu-west"], flows
    wait.until(lambda d: all("rec/s" in t for t in texts("svg#topology a.flow-edge text.edge-label")))
    places = {e.get_attribute("data-cluster"): e.find_element(By.CSS_SELECTOR, "text.node-detail").text
              for e in driver.find_elements(By.CSS_SELECTOR, "svg#topology g.cluster")}
    assert places == {"us-east": "us-east-1 · aws", "eu-west": "europe-west1 · gcp", "ap-south": "centralindia · azure"}, places
    shot("topology.png")

    # A burst: some flow falls behind, then catches up while the page stays loaded.
    driver.get(base + "/flows")
    driver.execute_script("window.ternMarker = 'flows page';")

    def flow_lags():
        return driver.execute_script(
            "return Object.fromEntries([...document.querySelectorAll('#flows tbody tr[data-flow]')]"
            ".map(r => [r.dataset.flow, parseInt(r.querySelector('td[data-field=lag_records]').textContent)]))")

    def lagging(d):
        behind = {f: lag for f, lag in flow_lags().items() if lag >= BURST_LAG}
        return behind or False

    burst_wait = WebDriverWait(driver, 120, poll_frequency=0.2, ignored_exceptions=[StaleElementReferenceException])
    behind = burst_wait.until(lagging)
    burst_flow, peak = max(behind.items(), key=lambda kv: kv[1])
    shot("flows-burst.png")

    def caught_up(d):
        global peak
        lag = flow_lags()[burst_flow]
        peak = max(peak, lag)
        return lag <= CAUGHT_UP

    burst_wait.until(caught_up)
    assert driver.execute_script("return window.ternMarker") == "flows page", "the page was reloaded"
    print(f"burst: {burst_flow} fell up to {peak} records behind on the page, then caught up to {flow_lags()[burst_flow]}")
    shot("flows-caught-up.png")

    # Without the token nothing can be changed.
    driver.get(base + FLOW_PATH)
    assert driver.find_elements(By.ID, "pause") == [], "no pause button without a session"
    refused = [post_status(FLOW_PATH + "/pause"), post_status("/api/v1/flows/us-east-%3Eeu-west/pause"),
               post_status("/api/v1/flows/us-east-%3Eeu-west/pause", {"Authorization": "Bearer not-the-token"})]
    assert refused == [401, 401, 401], refused
    driver.get(base + FLOW_PATH)
    assert text("#flow-paused") == "no"

    # A wrong token is refused at the login form, the right one lets the operator in.
    driver.get(base + "/login?next=" + FLOW_PATH.replace("%", "%25"))
    driver.find_element(By.ID, "token").send_keys("not-the-token")
    driver.find_element(By.ID, "login").click()
    wait.until(lambda d: d.find_elements(By.ID, "login-error"))
    driver.find_element(By.ID, "token").send_keys(token)
    driver.find_element(By.ID, "login").click()
    wait.until(lambda d: d.find_elements(By.ID, "pause"))
    assert driver.current_url.endswith(FLOW_PATH), driver.current_url

    # Pause: the flow stops and its lag grows on the page while it stays loaded.
    driver.find_element(By.ID, "pause").click()
    wait.until(lambda d: d.find_elements(By.ID, "resume") and text("#flow-paused") == "yes")
    driver.execute_script("window.ternMarker = 'same page';")
    first = lag()
    wait.until(lambda d: lag() >= first + 200)
    grown = lag()
    assert driver.execute_script("return window.ternMarker") == "same page", "the page was reloaded"
    assert text("#flow-state") == "paused"
    partition_lags = [int(t) for t in texts("#partitions td[data-field=lag_records]")]
    assert sum(partition_lags) > 0, partition_lags
    print(f"lag while paused went from {first} to {grown} records without a reload")
    shot("flow-paused.png")
    driver.get(base + "/")
    wait.until(lambda d: "paused" in d.find_element(By.CSS_SELECTOR, f'a.flow-edge[data-flow="{FLOW}"]').get_attribute("class"))
    shot("topology-paused.png")

    # Resume: the lag shrinks again, still without a reload.
    driver.get(base + FLOW_PATH)
    driver.find_element(By.ID, "resume").click()
    wait.until(lambda d: d.find_elements(By.ID, "pause") and text("#flow-paused") == "no")
    driver.execute_script("window.ternMarker = 'resumed page';")
    wait.until(lambda d: lag() < grown / 4)
    assert driver.execute_script("return window.ternMarker") == "resumed page", "the page was reloaded"
    print(f"after resume the lag fell to {lag()} records")
    shot("flow-resumed.png")

    # A drill from the Drills page: it runs, reports, and lands in the history.
    driver.get(base + "/drills")
    driver.find_element(By.CSS_SELECTOR, f'#drill-flow option[value="{FLOW}"]').click()
    driver.find_element(By.ID, "start-drill").click()
    wait.until(lambda d: texts("#report-link"))
    shot("drill-progress.png")
    driver.find_element(By.ID, "report-link").click()
    wait.until(lambda d: texts("#verdict"))
    verdict = text("#verdict")
    assert verdict in ("pass", "fail", "no-offsets", "error"), verdict
    assert texts("section.drill-group[data-group=billing]"), "the demo's billing group is in the report"
    print(f"drill from the dashboard: {verdict}, RPO {text('#rpo-records')} records, RTO {text('#rto')}")
    shot("drill-report.png")
    driver.get(base + "/drills")
    assert len(texts("#history tbody tr")) == 1

    # Unknown pages get a 404 page.
    driver.get(base + "/no/such/page")
    assert text("#status").startswith("404"), driver.page_source[:500]
    print("browser checks passed")
finally:
    driver.quit()
