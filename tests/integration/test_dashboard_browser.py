"""The dashboard in a real browser (Debian's chromium, headless, driven by chromedriver through
selenium) against a real manager, two real nodes and a running swarm: sign in, the node list,
the swarm's page whose training chart shows a new round live (no reload), its logs, stopping the
swarm through the confirmation dialog; no error in the browser's console. A screenshot is saved
as a CI artefact: $MANTA_ARTEFACTS (default: <build dir>/artefacts)/dashboard.png."""
import os
import pathlib

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By

from dashboard_env import PASSWORD, DashboardSwarm
from wire_env import wait_for

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"


def artefacts() -> pathlib.Path:
    d = os.environ.get("MANTA_ARTEFACTS") or os.path.join(
        os.environ.get("MANTA_BUILD_DIR", "build"), "artefacts")
    p = pathlib.Path(d)
    p.mkdir(parents=True, exist_ok=True)
    return p


def browser(tmp_path):
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for a in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
              "--window-size=1280,1600", f"--user-data-dir={tmp_path / 'chromium'}",
              "--no-first-run", "--disable-extensions", "--disable-background-networking"):
        opts.add_argument(a)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service(CHROMEDRIVER, log_path=str(tmp_path / "driver.log")),
                            options=opts)


def test_dashboard_in_a_browser(tmp_path, node_bin):
    assert os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER), \
        "chromium and chromium-driver are installed by scripts/deps"
    sw = DashboardSwarm(tmp_path, node_bin, nodes=2).start(serve=True)
    d = browser(tmp_path)
    shot = artefacts() / "dashboard.png"

    def find(css):
        return d.find_element(By.CSS_SELECTOR, css)

    def finds(css):
        return d.find_elements(By.CSS_SELECTOR, css)

    def shown(css):
        els = finds(css)
        return els[0] if els and els[0].is_displayed() else None

    try:
        d.get(sw.base() + "/")
        wait_for(lambda: shown("#login-form"), timeout=30, interval=0.2, what="the sign-in form")
        # a wrong password is refused with the server's sentence
        find("#login-user").send_keys("ana")
        find("#login-password").send_keys("not-the-password")
        find("#login-submit").click()
        wait_for(lambda: "wrong" in find("#login-error").text, timeout=30, interval=0.2,
                 what="the refusal")
        find("#login-password").clear()
        find("#login-password").send_keys(PASSWORD)
        find("#login-submit").click()
        wait_for(lambda: shown("#user-name") and find("#user-name").text == "ana", timeout=30,
                 interval=0.2, what="signed in as ana")

        # the nodes
        find("#nav-nodes").click()
        rows = wait_for(lambda: len(finds("#nodes-table tr[data-node-id]")) == 2 and
                        finds("#nodes-table tr[data-node-id]"), timeout=60, interval=0.2,
                        what="two node rows")
        assert sorted(r.find_element(By.CSS_SELECTOR, ".node-alias").text for r in rows) == [
            "node0", "node1"]
        wait_for(lambda: all(r.find_element(By.CSS_SELECTOR, ".node-status").text == "CONNECTED"
                             for r in finds("#nodes-table tr[data-node-id]")),
                 timeout=30, interval=0.2, what="both nodes CONNECTED")

        # the swarm list, then its page
        find("#nav-swarms").click()
        row = wait_for(lambda: shown(f'#swarms-table tr[data-swarm-id="{sw.swarm}"]'),
                       timeout=30, interval=0.2, what="the swarm in the list")
        assert row.find_element(By.CSS_SELECTOR, ".swarm-status").text == "RUNNING"
        row.find_element(By.CSS_SELECTOR, "a").click()
        wait_for(lambda: find("#swarm-status").text == "RUNNING", timeout=30, interval=0.2,
                 what="the swarm's page")
        assert finds("#swarm-graph svg"), "the graph is drawn"
        assert "worker" in find("#swarm-graph").text and "boss" in find("#swarm-graph").text

        def chart_rounds():
            svg = finds('#training-chart svg[data-key="metrics.val_acc"]')
            return int(svg[0].get_attribute("data-iterations") or 0) if svg else 0
        first = wait_for(chart_rounds, timeout=60, interval=0.2, what="the training chart")
        # a new round shows live: the page is not reloaded
        d.execute_script("window.__manta_probe = 1")
        wait_for(lambda: chart_rounds() > first, timeout=180, interval=0.5,
                 what=lambda: f"a new round on the chart (still {chart_rounds()})")
        assert d.execute_script("return window.__manta_probe") == 1
        wait_for(lambda: finds("#logs-list .log-entry"), timeout=60, interval=0.2,
                 what="task logs")
        assert finds("#placement-table tr") and finds("#history-table tr")
        d.save_screenshot(str(shot))

        # stop it, through the confirmation
        find("#stop-swarm").click()
        wait_for(lambda: shown("#confirm-dialog"), timeout=10, interval=0.1,
                 what="the confirmation")
        assert sw.swarm in find("#confirm-dialog").text
        find("#confirm-yes").click()
        wait_for(lambda: "has stopped" in find("#action-message").text, timeout=30,
                 interval=0.2, what="the stop's answer")
        wait_for(lambda: find("#swarm-status").text == "STOPPED", timeout=30, interval=0.2,
                 what="the swarm STOPPED on the page")
        d.save_screenshot(str(tmp_path / "stopped.png"))

        # the 401s of the first look and of the wrong password are answers, not errors
        errors = [e for e in d.get_log("browser")
                  if e["level"] == "SEVERE" and "status of 401" not in e["message"]]
        assert not errors, errors
        assert shot.stat().st_size > 10000
    finally:
        d.quit()
        sw.close()
