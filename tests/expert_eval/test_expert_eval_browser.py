"""End to end in headless Chromium: a rater completes one trial of the Expert evaluation tab,
comes back through the resume link, and another page typing the same name is refused."""

from __future__ import annotations

import re
import socket

import gradio as gr
import pytest

from expert_eval import ui

pytestmark = pytest.mark.browser


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def choose_rank(page, slot: int, rank: int) -> None:
    """Open the rank dropdown of an output and pick a rank from its own option list."""
    box = page.locator(f"#expert-rank-{slot} input")
    box.click()
    options = box.get_attribute("aria-controls")
    page.locator(f"[id^='{options}-option'][aria-label='{rank}']").click()
    page.locator(f"#expert-rank-{slot}").get_by_role("combobox").press("Escape")


def test_a_rater_completes_one_trial_in_the_browser(
    prepared_study, tmp_path, monkeypatch, chromium
):
    sync_api = pytest.importorskip("playwright.sync_api")
    monkeypatch.delenv("SPACE_ID", raising=False)
    with gr.Blocks() as demo, gr.Tabs():
        panel = ui.expert_tab(prepared_study.directory, tmp_path / "ratings.sqlite3")
    demo.queue()
    _, url, _ = demo.launch(prevent_thread_lock=True, server_port=free_port(), quiet=True)
    try:
        with sync_api.sync_playwright() as p:
            browser = p.chromium.launch(
                executable_path=chromium[0], headless=True, args=chromium[1]
            )
            page = browser.new_page(viewport={"width": 1300, "height": 1400})
            page.set_default_timeout(30_000)
            page.goto(url)
            page.locator("#expert-name").get_by_role("textbox").fill("Browser Tester")
            page.locator("#expert-start").click()
            progress = page.locator("#expert-progress")
            progress.get_by_text("Trial 1 of 4").wait_for()
            for i in range(3):
                page.locator(f"#expert-img-{i} img").wait_for()
            # Submitting with two outputs ranked first is refused, with a message.
            for i, (rating, rank) in enumerate([(5, 1), (2, 1), (4, 3)]):
                page.locator(f"#expert-rating-{i} input[value='{rating}']").check()
                choose_rank(page, i, rank)
            page.locator("#expert-comment textarea").fill("dimer rows look right in A")
            page.locator("#expert-submit").click()
            page.locator("#expert-status").get_by_text("rank 1 is given to A and B").wait_for()
            assert panel.store.counts()["answers"] == 0
            # Fix the ranking and submit: the answer is stored and the next trial follows.
            choose_rank(page, 1, 3)
            choose_rank(page, 2, 2)
            page.locator("#expert-submit").click()
            page.locator("#expert-status").get_by_text("Answer saved").wait_for()
            progress.get_by_text("Trial 2 of 4").wait_for()
            page.screenshot(path=str(tmp_path / "after_submit.png"), full_page=True)
            # The token, shown once with the first trial, and its resume link.
            note = page.locator("#expert-token-note")
            token = re.search(r"[a-z2-9]{4}(?:-[a-z2-9]{4}){4}", note.inner_text()).group(0)
            link = note.get_by_role("link")
            assert link.get_attribute("href").endswith(f"?rater={token}")

            # The resume link, opened in a fresh browser, carries on at trial 2.
            back = browser.new_context().new_page()
            back.set_default_timeout(30_000)
            back.goto(f"{url}?rater={token}")
            back.locator("#expert-progress").get_by_text("Trial 2 of 4").wait_for()
            back.locator("#expert-img-0 img").wait_for()
            assert back.locator("#expert-token-note").inner_text().strip() == ""

            # Another browser typing the same name gets a request for the token, no trial.
            other = browser.new_context().new_page()
            other.set_default_timeout(30_000)
            other.goto(url)
            other.locator("#expert-name").get_by_role("textbox").fill("browser tester")
            other.locator("#expert-start").click()
            other.locator("#expert-status").get_by_text("paste your rater token").wait_for()
            assert "Trial" not in other.locator("#expert-progress").inner_text()
            assert other.locator("#expert-img-0 img").count() == 0
            browser.close()
    finally:
        demo.close()
    records = panel.store.records()
    assert len(records) == 3 and {r.rater for r in records} == {"Browser Tester"}
    by_label = {r.label: (r.rating, r.rank) for r in records}
    assert by_label == {"A": (5, 1), "B": (2, 3), "C": (4, 2)}
    assert {r.comment for r in records} == {"dimer rows look right in A"}
    assert panel.store.check() == []
