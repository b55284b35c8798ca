"""make screenshots: a PNG of every web page, taken in headless Chromium from a throw-away archive of a
classified night (`classify --json` lines) and a private copy of the shipped model repository.

Pages: night (with its timeline and trends), exposure, maps after a prototype-node search, cell gallery as a
viewer, login, and the cell page of a logged-in operator with the curation form.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from selenium.webdriver.common.by import By  # noqa: E402

from skyqa import shipped_models  # noqa: E402
from skyqa.service.archive.store import Archive  # noqa: E402
from skyqa.service.config import Settings  # noqa: E402
from skyqa.service.verdict import Verdict  # noqa: E402
from skyqa.service.web.auth import hash_password  # noqa: E402
from tests.web_browser import chromium, serving  # noqa: E402

USER, PASSWORD = "operator", "screenshots"


def full_page(browser, path: Path) -> None:  # noqa: ANN001 - a selenium WebDriver
    height = browser.execute_script("return document.documentElement.scrollHeight")
    browser.set_window_size(1400, min(max(height, 600), 6000))
    browser.save_screenshot(str(path))
    print(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--verdicts", type=Path, required=True, help="classify --json output of a night")
    parser.add_argument("--previews", type=Path, help="where that classify run wrote its previews (optional)")
    parser.add_argument("--out", type=Path, default=ROOT / "out" / "screenshots")
    args = parser.parse_args()
    work = args.out / "work"
    shutil.rmtree(work, ignore_errors=True)
    shutil.copytree(shipped_models(), work / "models")
    verdicts = [Verdict.model_validate_json(line) for line in args.verdicts.read_text().splitlines() if line.strip()]
    settings = Settings(archive={"url": f"sqlite:///{work / 'archive.db'}"}, models={"repository": work / "models"},
                        previews={"location": args.previews or work / "previews"},
                        web={"users": {USER: hash_password(PASSWORD)}})
    Archive(settings.archive.url).write(verdicts, source="import")
    first = next(v for v in verdicts if v.cell is not None and v.metadata.night is not None)
    nodes = [int(n) for n in np.argsort(first.histovector)[::-1][:4]]
    x, y = first.cell
    with serving(settings) as base, chromium() as browser:
        shots = [("night", f"/nights/{first.metadata.night}"), ("exposure", f"/exposures/{first.exposure_id}"),
                 ("maps", "/maps?" + "&".join(f"nodes={n}" for n in nodes) + "&min_fraction=0.05"),
                 ("cell", f"/cells/{x}/{y}"), ("login", f"/login?next=/cells/{x}/{y}")]
        for name, path in shots:
            browser.get(base + path)
            full_page(browser, args.out / f"{name}.png")
        browser.find_element(By.ID, "user").send_keys(USER)
        browser.find_element(By.ID, "password").send_keys(PASSWORD)
        browser.find_element(By.ID, "submit-login").click()
        browser.find_element(By.ID, "relabel-form")
        full_page(browser, args.out / "cell-curation.png")


if __name__ == "__main__":
    main()
