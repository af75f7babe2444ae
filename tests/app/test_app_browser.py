"""A real browser (Debian's Chromium, headless, driven by Playwright) using the Restore tab.

With STM_ZOO_SCREENSHOTS=1 the test also writes the README's screenshots, docs/img/app_restore.png
and docs/img/app_zoo.png, with the repository's zoo listed (otherwise the zoo is empty and the
screenshots stay in a temporary folder).
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

import pytest

from stm_zoo.io import Scan, save_scan

pytestmark = [
    pytest.mark.browser,
    pytest.mark.filterwarnings("ignore:.*(no_silent_downcasting|copy keyword).*"),
]

REPO_ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = os.environ.get("STM_ZOO_SCREENSHOTS") == "1"


@pytest.fixture(scope="module")
def app_url(tmp_path_factory: pytest.TempPathFactory, chromium: tuple[str, list[str]]):
    """URL of the app served from this process, writing only under a temporary folder."""
    pytest.importorskip("playwright.sync_api")
    root = tmp_path_factory.mktemp("app_browser")
    with pytest.MonkeyPatch.context() as mp:
        # Empty: the page defaults to classical; the screenshots list the repository's zoo.
        zoo = os.path.relpath(REPO_ROOT / "zoo") if SCREENSHOTS else str(root / "zoo")
        mp.setenv("STM_ZOO_DIR", zoo)
        mp.setenv("STM_ZOO_APP_TMP", str(root / "requests"))
        mp.setenv("STM_ZOO_APP_EXAMPLES", str(root / "examples"))
        mp.setenv("GRADIO_TEMP_DIR", str(root / "gradio"))
        mp.setenv("GRADIO_ANALYTICS_ENABLED", "False")
        mp.setenv("HF_HUB_OFFLINE", "1")
        spec = importlib.util.spec_from_file_location("stm_zoo_app_browser", REPO_ROOT / "app.py")
        app = sys.modules["stm_zoo_app_browser"] = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(app)
        demo = app.build_app()
        _, url, _ = demo.launch(prevent_thread_lock=True, quiet=True, **app.launch_options())
        try:
            yield url
        finally:
            demo.close()


@pytest.fixture
def scan_file(tmp_path: Path) -> Path:
    """A real Nanonis file when ../shared is present, else a simulated .sxm."""
    real = REPO_ROOT.parent / "shared" / "data" / "spm-fixtures" / "nanonis" / "Si_7x7_028.sxm"
    if real.is_file():
        return real
    from training.explorer import pristine_surface

    heights_nm, pixel_nm = pristine_surface(0)
    path = tmp_path / "simulated.sxm"
    side_m = heights_nm.shape[0] * pixel_nm * 1e-9
    save_scan(Scan(heights_nm * 1e-9, scan_size_m=(side_m, side_m)), path)
    return path


def save_small(shot: Path, target: Path) -> None:
    """Save a screenshot with a 256-colour palette: half the bytes, no visible change."""
    from PIL import Image

    palette = Image.open(shot).convert("RGB").quantize(256, method=Image.Quantize.MEDIANCUT)
    palette.save(target, optimize=True)


def test_upload_restore_and_download_in_chromium(
    app_url: str, scan_file: Path, tmp_path: Path, chromium: tuple[str, list[str]]
):
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=chromium[0], headless=True, args=chromium[1]
        )
        try:
            page = browser.new_page(viewport={"width": 1440, "height": 1000})
            page.goto(app_url)
            page.locator("#restore-upload input[type=file]").set_input_files(str(scan_file))
            expect(page.get_by_text("Nanonis .sxm")).to_be_visible(timeout=60_000)
            page.get_by_label("Model").click()
            page.get_by_role("option", name="Classical (no network)").click()
            page.locator("#restore-button").click()

            result = page.locator("#restore-result img")
            expect(result).to_be_visible(timeout=90_000)
            links = page.locator("#restore-downloads a[data-testid=download-link]")
            expect(links).to_have_count(4, timeout=30_000)
            hrefs = [links.nth(i).get_attribute("href") for i in range(4)]
            assert hrefs[0].endswith("_restore-classical.sxm")
            assert {Path(h).suffix for h in hrefs} == {".sxm", ".gwy", ".png", ".npy"}
            assert page.locator("#restore-result img").evaluate("i => i.naturalWidth") >= 512
            expect(page.locator("#restore-slider img").first).to_be_visible()

            # The line profile and the power spectra follow the result; moving the line or
            # turning it into a column redraws the profile without running the model again.
            profile, spectra = (
                page.locator("#restore-profile img"),
                page.locator("#restore-fft img"),
            )
            expect(profile).to_be_visible(timeout=30_000)
            expect(spectra).to_be_visible(timeout=30_000)
            # Two panels (input and result) once the result's spectra are in.
            page.wait_for_function(
                "() => document.querySelector('#restore-fft img')?.naturalWidth > 800",
                timeout=30_000,
            )
            first = profile.get_attribute("src")
            line = page.locator("#profile-index input[type=number]")
            line.fill("40")
            line.press("Enter")
            expect(profile).not_to_have_attribute("src", first, timeout=30_000)
            moved = profile.get_attribute("src")
            page.get_by_role("radio", name="Column").check()
            expect(profile).not_to_have_attribute("src", moved, timeout=30_000)
            expect(line).not_to_have_value("40")  # back to the middle column

            shots = tmp_path / "shots"
            shots.mkdir()
            page.screenshot(path=str(shots / "app_restore.png"), full_page=True)
            page.get_by_role("tab", name="Model zoo").click()
            expect(page.get_by_text("Local zoo:")).to_be_visible()
            page.screenshot(path=str(shots / "app_zoo.png"), full_page=True)
            for shot in shots.iterdir():
                assert shot.stat().st_size > 50_000
                if SCREENSHOTS:
                    save_small(shot, REPO_ROOT / "docs" / "img" / shot.name)
            page.get_by_role("tab", name="Restore").click()

            # A bad file: the message appears in the page and the app keeps working.
            bad = tmp_path / "notes.txt"
            bad.write_text("not a scan")
            page.locator("#restore-upload input[type=file]").set_input_files(str(bad))
            expect(page.get_by_text("are not supported").first).to_be_visible(timeout=30_000)
        finally:
            browser.close()
