"""The web console in a real browser: Debian's headless Chromium driven by Selenium through the
system chromedriver, against a real ``facerec serve`` with API keys required.

One walk through the console as an operator would do it: sign in with a key made by
``facerec keys create``, enroll Grace Hopper from a file, recognise her (box and name drawn),
look at models and health, erase her (confirming the dialog), switch to Thai. Screenshots are
saved under ``test-artifacts/browser/`` (printed; ignored by git). Without Chromium, chromedriver
or selenium the test skips on a developer machine and fails in CI (``FACEREC_TEST_STRICT=1``).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from bench.server import Server, running_server

from tests.conftest import REPO, unavailable
from tests.images import blank_png, grace_hopper_jpeg

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
ARTIFACTS = REPO / "test-artifacts" / "browser"
WAIT_S = 60.0  # the longest any one step may take (the first recognition loads the models)
KEY_OPTIONS = ("--scopes", "detect,recognize,enroll,manage,admin", "--name", "console test")
# Samples every 97th pixel's red channel: how many are not black (the photo is drawn).
LIT_PIXELS = (
    "const c = arguments[0];"
    "const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;"
    "let lit = 0; for (let i = 0; i < d.length; i += 4 * 97) lit += d[i] > 0; return lit;"
)
INSTALL = "apt-get install -y chromium chromium-driver; pip install -e '.[test]'"


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, str]]:
    """A served facerec with keys required, and an all-scope key made on its database."""
    database = f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('console') / 'facerec.db'}"
    env = {"FACEREC_AUTH__REQUIRED": "true", "FACEREC_DB__URL": database}
    with running_server(env=env) as server:
        created = subprocess.run(
            [sys.executable, "-m", "facerec.cli", "keys", "create", "--json", *KEY_OPTIONS],
            env={**os.environ, **env},
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        )
        yield server, json.loads(created.stdout)["key"]


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not CHROMIUM.exists() or not CHROMEDRIVER.exists():
        unavailable(f"Chromium ({CHROMIUM}) and chromedriver ({CHROMEDRIVER})", INSTALL)
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        unavailable("selenium", INSTALL)
    profile = tempfile.mkdtemp(prefix="facerec-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--no-first-run",
        f"--user-data-dir={profile}",
        "--window-size=1280,1000",
        "--lang=en-US",
        # The camera page: a synthetic webcam, permission granted without a prompt.
        "--use-fake-device-for-media-stream",
        "--use-fake-ui-for-media-stream",
    ):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    driver.set_page_load_timeout(WAIT_S)
    driver.set_script_timeout(WAIT_S)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def test_console_signs_in_enrolls_recognises_erases_and_speaks_thai(
    service: tuple[Server, str], browser: Any
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import Select, WebDriverWait

    server, key = service
    base = str(server.client.base_url).rstrip("/")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    print(f"\nconsole screenshots: {ARTIFACTS}")
    photo = ARTIFACTS / "grace_hopper.jpg"
    photo.write_bytes(grace_hopper_jpeg())
    blank = ARTIFACTS / "blank.png"
    blank.write_bytes(blank_png())

    def wait(condition: Callable[[Any], Any], what: str) -> Any:
        return WebDriverWait(browser, WAIT_S, poll_frequency=0.1).until(condition, what)

    def shot(name: str) -> None:
        browser.save_screenshot(str(ARTIFACTS / f"{name}.png"))

    def visit(page: str) -> None:
        browser.find_element(By.CSS_SELECTOR, f'nav a[data-page="{page}"]').click()
        wait(lambda d: d.find_element(By.ID, "view").get_attribute("data-page") == page, page)

    try:
        # The page itself is open; the API behind it is not.
        assert httpx.get(f"{base}/console", timeout=10).status_code == 200
        assert httpx.get(f"{base}/api/models", timeout=10).status_code == 401
        browser.get(f"{base}/console")
        key_input = wait(ec.visibility_of_element_located((By.ID, "key")), "the sign-in form")
        browser.find_element(By.ID, "without-key").click()  # refused: keys are required
        wait(ec.visibility_of_element_located((By.CSS_SELECTOR, ".message.error")), "refusal")
        key_input.send_keys(key)
        shot("01-sign-in")
        browser.find_element(By.CSS_SELECTOR, "#signin-form button[type=submit]").click()
        wait(ec.visibility_of_element_located((By.ID, "nav")), "the navigation after sign-in")

        visit("enroll")
        browser.find_element(By.NAME, "person_name").send_keys("Grace Hopper")
        browser.find_element(By.CSS_SELECTOR, "#enroll-form input[type=file]").send_keys(
            f"{photo}\n{blank}"
        )
        browser.find_element(By.CSS_SELECTOR, "#enroll-form button[type=submit]").click()
        rejected = wait(
            ec.visibility_of_element_located((By.CSS_SELECTOR, "#enroll-results li.rejected")),
            "the blank photo rejected",
        )
        assert rejected.get_attribute("data-reason") == "no_face" and "blank.png" in rejected.text
        accepted = browser.find_element(By.CSS_SELECTOR, "#enroll-results li.accepted")
        assert "Grace Hopper" in accepted.text and "sharpness" in accepted.text
        shot("02-enroll")

        visit("recognize")
        browser.find_element(By.CSS_SELECTOR, "#view input[type=file]").send_keys(str(photo))
        known = wait(
            ec.visibility_of_element_located((By.CSS_SELECTOR, "#recognize-faces li.known")),
            "her face identified",
        )
        assert known.text.startswith("Grace Hopper ") and known.text.endswith("%")
        canvas = browser.find_element(By.ID, "recognize-canvas")
        labels = json.loads(canvas.get_attribute("data-labels"))
        assert labels == [known.text]
        assert canvas.size["width"] > 100  # the photo is drawn, with her box over it
        assert browser.execute_script(LIT_PIXELS, canvas) > 100
        shot("03-recognize")

        visit("models")
        wait(ec.visibility_of_element_located((By.ID, "models-table")), "the model list")
        assert "retinaface" in browser.find_element(By.ID, "models-table").text
        visit("health")
        wait(ec.visibility_of_element_located((By.CSS_SELECTOR, "#latency svg")), "latency chart")
        assert "detect" in browser.find_element(By.CSS_SELECTOR, "#latency svg").text
        shot("04-health")

        visit("persons")
        row = wait(
            ec.visibility_of_element_located((By.CSS_SELECTOR, "#persons-table tbody tr")),
            "her row",
        )
        assert "Grace Hopper" in row.text
        row.find_element(By.CSS_SELECTOR, "button.erase").click()
        dialog = wait(ec.visibility_of_element_located((By.ID, "confirm")), "the confirmation")
        assert "Grace Hopper" in dialog.text
        shot("05-erase-confirm")
        dialog.find_element(By.CSS_SELECTOR, "button.confirm-ok").click()
        wait(ec.invisibility_of_element_located((By.ID, "persons-table")), "the row gone")
        persons = httpx.get(
            f"{base}/api/face-recognition/persons", headers={"X-API-Key": key}, timeout=10
        ).json()["persons"]
        assert persons == []

        Select(browser.find_element(By.ID, "lang")).select_by_value("th")
        wait(
            lambda d: d.find_element(By.CSS_SELECTOR, 'nav a[data-page="persons"]').text == "บุคคล",
            "Thai navigation",
        )
        assert browser.find_element(By.CSS_SELECTOR, "#view h2").text == "บุคคล"
        assert browser.find_element(By.ID, "sign-out").text == "ออกจากระบบ"
        shot("06-thai")
    except Exception:
        shot("failure")
        for entry in browser.get_log("browser"):
            print("browser:", entry.get("level"), entry.get("message"))
        raise


def test_console_without_auth_compares_tags_photos_and_streams_the_camera(browser: Any) -> None:
    """Keys off (loopback): no key needed; collections, compare, photos and the camera page
    (Chromium's synthetic webcam streamed to /ws/recognize, which a browser can only use
    without auth)."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    photo = ARTIFACTS / "grace_hopper.jpg"
    photo.write_bytes(grace_hopper_jpeg())

    def wait(condition: Callable[[Any], Any], what: str) -> Any:
        return WebDriverWait(browser, WAIT_S, poll_frequency=0.1).until(condition, what)

    def visit(page: str) -> None:
        browser.find_element(By.CSS_SELECTOR, f'nav a[data-page="{page}"]').click()
        wait(lambda d: d.find_element(By.ID, "view").get_attribute("data-page") == page, page)

    with running_server(env={"FACEREC_AUTH__REQUIRED": "false"}) as server:
        base = str(server.client.base_url).rstrip("/")
        try:
            browser.execute_script("sessionStorage.clear(); localStorage.clear();")
            browser.get(f"{base}/console#signin")
            wait(ec.element_to_be_clickable((By.ID, "without-key")), "sign-in").click()
            wait(ec.visibility_of_element_located((By.ID, "nav")), "the navigation")

            visit("collections")
            browser.find_element(By.CSS_SELECTOR, "#view input[name=name]").send_keys("door")
            browser.find_element(By.CSS_SELECTOR, "#view form button[type=submit]").click()
            wait(
                ec.text_to_be_present_in_element((By.ID, "collections-table"), "door"),
                "the new collection",
            )

            visit("compare")
            inputs = browser.find_elements(By.CSS_SELECTOR, "#view input[type=file]")
            for element in inputs:
                element.send_keys(str(photo))
            browser.find_element(By.CSS_SELECTOR, "#view button[type=submit]").click()
            verdict = wait(
                ec.visibility_of_element_located((By.CSS_SELECTOR, "#compare-result .verdict")),
                "the verdict",
            )
            assert "same" in verdict.get_attribute("class")
            browser.save_screenshot(str(ARTIFACTS / "07-compare.png"))

            visit("photos")
            browser.find_element(By.CSS_SELECTOR, "#view input[type=file]").send_keys(str(photo))
            browser.find_element(By.CSS_SELECTOR, "#view form button[type=submit]").click()
            unknown = wait(
                ec.visibility_of_element_located((By.CSS_SELECTOR, "#photo-faces li.unknown")),
                "the untagged face",
            )
            assert unknown.text.startswith("Unknown")
            wait(ec.visibility_of_element_located((By.ID, "suggestions")), "suggestions")

            visit("camera")
            browser.find_element(By.CSS_SELECTOR, "#view button.primary").click()
            wait(
                ec.text_to_be_present_in_element((By.CSS_SELECTOR, "#view .status"), "frame 2"),
                "two streamed frames answered",
            )
            browser.save_screenshot(str(ARTIFACTS / "08-camera.png"))
            visit("models")  # leaving the page closes the socket and the camera
        except Exception:
            browser.save_screenshot(str(ARTIFACTS / "failure-no-auth.png"))
            for entry in browser.get_log("browser"):
                print("browser:", entry.get("level"), entry.get("message"))
            raise
