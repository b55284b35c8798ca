"""The operator's night in a real browser (headless Debian Chromium, Selenium): a verdict arrives live, an exposure
and a similar one, a prototype-node search, login, relabelling a cell, publishing, and the new version classifying.

One browser and one server for the whole walk (each step needs the state the previous left); waits are explicit
(WebDriverWait on what the step must show), never sleeps.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.select import Select
from selenium.webdriver.support.ui import WebDriverWait

from skyqa.service.archive.store import Archive
from skyqa.service.labels import Label
from skyqa.service.pipeline.classify import Classifier
from tests.fits_factory import write_exposure
from tests.verdict_factory import make_verdict, random_histovectors
from tests.web_browser import chromium, serving
from tests.web_fixtures import NIGHT, OPERATOR, PASSWORD, web_settings

pytestmark = pytest.mark.slow
LIVE_WITHIN_S = 2.0  # the bound: a new verdict shows on the open night page within 2 s


def test_operator_night_from_live_verdict_to_published_map(tmp_path: Path) -> None:
    settings = web_settings(tmp_path)
    fits = write_exposure(tmp_path / "x.fits.fz", n_ccds=2, expnum=4242, seed=5)
    classifier = Classifier(settings.model_copy(update={"workers": 1}))
    before = classifier.classify(fits)
    classifier.close()
    x, y = before.cell
    new_label = Label.BADFOCUS if before.label is not Label.BADFOCUS else Label.BT
    archive = Archive(settings.archive.url)
    archive.write([before])

    with serving(settings) as base, chromium() as browser:
        wait = WebDriverWait(browser, 10)

        # the night page, open while a verdict is archived: its row appears without a reload
        browser.get(f"{base}/nights/{NIGHT}")
        assert browser.find_element(By.ID, "total").text == "30"
        vector, _ = random_histovectors(1, seed=11)
        archive.write([make_verdict("live01", vector[0], Label.RBT, minute=500)])
        WebDriverWait(browser, LIVE_WITHIN_S).until(
            ec.presence_of_element_located((By.CSS_SELECTOR, 'tr[data-exposure="live01"]')))
        assert browser.find_element(By.ID, "total").text == "31"

        # an exposure from the table, then its most similar archived exposure
        browser.find_element(By.LINK_TEXT, "e03").click()
        wait.until(ec.text_to_be_present_in_element((By.ID, "exposure-title"), "e03"))
        assert browser.find_elements(By.CSS_SELECTOR, "svg.density rect")
        neighbour = browser.find_element(By.CSS_SELECTOR, "#similar tr.hit a")
        neighbour_id = neighbour.text
        neighbour.click()
        wait.until(ec.text_to_be_present_in_element((By.ID, "exposure-title"), neighbour_id))

        # select three prototype nodes on the DESOM-1 grid and search
        browser.get(f"{base}/maps")
        assert not browser.find_elements(By.ID, "publish")  # a viewer gets no publish button
        for node in (0, 1, 2):
            browser.find_element(By.CSS_SELECTOR, f'label.node input[value="{node}"]').click()
        field = browser.find_element(By.NAME, "min_fraction")
        field.clear()
        field.send_keys("0")
        browser.find_element(By.ID, "search-nodes").click()
        wait.until(ec.presence_of_element_located((By.ID, "results")))
        assert "nodes 0, 1, 2" in browser.find_element(By.ID, "results-title").text
        assert browser.find_elements(By.CSS_SELECTOR, "#results tr.hit")

        # log in, relabel the classified exposure's cell, publish
        browser.get(f"{base}/cells/{x}/{y}")
        browser.find_element(By.LINK_TEXT, "Log in").click()
        browser.find_element(By.ID, "user").send_keys(OPERATOR)
        browser.find_element(By.ID, "password").send_keys(PASSWORD)
        browser.find_element(By.ID, "submit-login").click()
        wait.until(ec.presence_of_element_located((By.ID, "relabel-form")))
        Select(browser.find_element(By.ID, "new-label")).select_by_value(new_label.value)
        browser.find_element(By.ID, "note").send_keys("donut-shaped sources")
        browser.find_element(By.ID, "relabel").click()
        wait.until(ec.text_to_be_present_in_element((By.ID, "pending"), new_label.value))
        browser.get(f"{base}/maps")
        browser.find_element(By.NAME, "note").send_keys("browser test")
        browser.find_element(By.ID, "publish").click()
        wait.until(ec.text_to_be_present_in_element((By.ID, "published"), "desom2 v2"))
        browser.get(f"{base}/cells/{x}/{y}")
        assert new_label.value in browser.find_element(By.ID, "cell-label").text

    after_classifier = Classifier(settings.model_copy(update={"workers": 1}))  # the next model load
    after = after_classifier.classify(fits)
    after_classifier.close()
    archive.close()
    assert (after.models.desom2, after.cell, after.label) == ("2", before.cell, new_label)
