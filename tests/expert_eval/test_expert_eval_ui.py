"""The Expert evaluation tab: blinding of every rater payload, validation, rater tokens and
resuming, admin view."""

from __future__ import annotations

import io
import json
import re
import socket
import struct
from collections import Counter, defaultdict
from pathlib import Path

import gradio as gr
import httpx
import numpy as np
import pandas as pd
import pytest
from PIL import Image

from expert_eval import ui
from expert_eval.blinding import rater_key
from expert_eval.panel import ADMIN_TOKEN_ENV, build_panel
from expert_eval.study import Study
from stm_zoo.errors import StmZooError
from webapp.previews import display_size, render

FAMILY_WORDS = re.compile(
    r"\b(fm|ddim|fft|ae|classical|autoencoder|flow|diffusion|small|large|steps?|gwyddion)\b",
    re.IGNORECASE,
)


def secrets_of(*studies: Study) -> list[str]:
    """Every string that would unblind (or identify) an output if a rater could see it."""
    found = []
    for study in studies:
        found += [study.study_id, study.secret, str(study.directory), *study.models]
        found += [m.replace("-", " ") for m in study.models]
        found += [i.input_id for i in study.inputs] + [i.source for i in study.inputs]
        for trial in study.trials:
            found += [trial.trial_id] + [o.output_id for o in trial.outputs]
    return found


def assert_blind(payload: object, studies: list[Study], words: bool = True) -> None:
    text = json.dumps(payload, default=str)
    for secret in secrets_of(*studies):
        assert secret.lower() not in text.lower(), secret
    if words:
        assert FAMILY_WORDS.search(text) is None, FAMILY_WORDS.search(text)


def png_chunks(data: bytes) -> list[str]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    chunks, pos = [], 8
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos : pos + 8])
        chunks.append(kind.decode("ascii"))
        pos += 12 + length
    return chunks


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def panel(prepared_study, tmp_path, monkeypatch):
    monkeypatch.delenv("SPACE_ID", raising=False)
    return build_panel(prepared_study.directory, tmp_path / "ratings.sqlite3")


def reference_images(study: Study, trial_id: str) -> dict[str, np.ndarray]:
    """output model -> the RGB preview of that output as the tab renders it."""
    trial = study.trial(trial_id)
    item = study.input_of(trial)
    size = display_size(item.scan_size_m, item.shape, min_width=384)
    return {
        o.model: render(np.load(study.output_path(o.output_id)), item.scan_size_m, "gold", size)
        for o in trial.outputs
    }


def shown_models(study: Study, trial_id: str, pngs: list[bytes]) -> list[str]:
    """Which model each served PNG shows, found by comparing pixels with reference renders."""
    references = reference_images(study, trial_id)
    found = []
    for png in pngs:
        pixels = np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))
        matches = [m for m, ref in references.items() if np.array_equal(ref, pixels)]
        assert len(matches) == 1
        found.append(matches[0])
    return found


def test_every_rater_payload_is_blind(prepared_study, tmp_path, monkeypatch):
    from gradio_client import Client

    monkeypatch.delenv("SPACE_ID", raising=False)
    db = tmp_path / "ratings.sqlite3"
    with gr.Blocks() as demo, gr.Tabs():
        panel = ui.expert_tab(prepared_study.directory, db)
    demo.queue()
    _, url, _ = demo.launch(prevent_thread_lock=True, server_port=free_port(), quiet=True)
    try:
        config = httpx.get(url + "config", timeout=30).json()
        assert "A: quality" in json.dumps(config)  # the page holds the tab ...
        assert_blind(config, [prepared_study])  # ... and nothing that unblinds it
        for leak in ("fm-small-2", "FM small", "3 steps", prepared_study.trials[0].trial_id):
            with pytest.raises(AssertionError):
                assert_blind({"status": leak}, [prepared_study])
        client = Client(url, download_files=False, verbose=False)
        api = client.view_api(return_format="dict", print_info=False)
        assert set(api["named_endpoints"]) == {"/expert_start", "/expert_resume", "/expert_submit"}
        assert_blind(api, [prepared_study])

        served: dict[str, list[bytes]] = {}
        for rater in ("Zoe", "Yann"):
            job = client.submit(rater, api_name="/expert_start")
            payload = job.result()
            assert_blind(payload, [prepared_study])
            assert payload[0].startswith("**Trial 1 of 4**")
            images = [payload[1]["value"], *(u["value"] for u in payload[2:5])]
            pngs = []
            for image in images:
                assert re.fullmatch(r"[0-9a-f]{24}\.png", image["orig_name"])
                assert Path(image["path"]).name == image["orig_name"]
                data = httpx.get(image["url"], timeout=30).content
                assert png_chunks(data) == ["IHDR", "IDAT", "IEND"]  # no text/exif chunks
                assert Image.open(io.BytesIO(data)).info == {}
                pngs.append(data)
            served[rater] = pngs
            assert [u["choices"] for u in payload[8:11]] == [
                [["1", "1"], ["2", "2"], ["3", "3"]]
            ] * 3

        # Invalid answers come back as a message and store nothing.
        bad = client.predict("", 4, 4, 4, "1", "1", "2", api_name="/expert_submit")
        assert "rank 1 is given to A and B" in bad[-1]
        assert_blind(bad, [prepared_study])
        bad = client.predict("", 4, None, 4, "1", "2", "3", api_name="/expert_submit")
        assert "B has no rating" in bad[-1]
        assert panel.store.counts()["answers"] == 0

        done = client.predict("looks good", 5, 3, 1, "1", "2", "3", api_name="/expert_submit")
        assert_blind(done, [prepared_study])
        assert done[0].startswith("**Trial 2 of 4**") and done[-1] == "Answer saved, thank you."
        records = panel.store.records()
        assert {r.rater for r in records} == {"Yann"} and len(records) == 3
        assert {r.comment for r in records} == {"looks good"}
        # The answer maps back to the outputs in the order shown under A, B, C.
        trial_id = records[0].trial_id
        by_label = {r.label: r for r in records}
        assert [by_label[x].rating for x in "ABC"] == [5, 3, 1]
        assert [by_label[x].model for x in "ABC"] == shown_models(
            prepared_study, trial_id, served["Yann"][1:]
        )
    finally:
        demo.close()


def test_orders_are_fixed_per_rater_and_vary_across_raters(panel, prepared_study):
    seen: dict[str, list[tuple[str, ...]]] = defaultdict(list)
    first_trials = Counter()
    for r in range(24):
        screen, state = panel.start(f"rater {r}")
        pngs = [Path(p).read_bytes() for p in screen.output_images]
        models = tuple(shown_models(prepared_study, state["trial_id"], pngs))
        seen[state["trial_id"]].append(models)
        first_trials[state["trial_id"]] += 1
        again, again_state = panel.resume(screen.token)  # reload: same trial, same order
        assert again_state["trial_id"] == state["trial_id"]
        assert [Path(p).read_bytes() for p in again.output_images] == pngs
        assert again.output_images != screen.output_images  # fresh random file names
    assert len(first_trials) > 1  # raters start on different trials
    under_a = Counter(models[0] for orders in seen.values() for models in orders)
    assert len(under_a) == 3  # every model appears under "A" for someone
    for orders in seen.values():
        if len(orders) >= 4:
            assert len(set(orders)) > 1


def test_bad_input_is_rejected_with_a_message_and_nothing_is_stored(panel):
    screen, state = panel.start("Quinn")
    cases = [
        (None, [3, 3, 3], ["1", "2", "3"], "**Resume** (with your token) first"),
        ({**state, "trial_id": "0123456789abcdef"}, [3, 3, 3], ["1", "2", "3"], "Start"),
        (state, [3, None, 3], ["1", "2", "3"], "B has no rating"),
        (state, [3, 3, 3], ["1", None, "3"], "B has no rank"),
        (state, [3, 3, 3], ["2", "2", "2"], "rank 2 is given to A and B and C"),
        (state, [3, 3, 3.5], ["1", "2", "3"], "whole numbers"),
        (state, [3, 3, 9], ["1", "2", "3"], "from 1 to 5"),
        (state, [3, 3, 0], ["1", "2", "3"], "from 1 to 5"),
        (state, [3, 3, 3], ["1", "2", "4"], "not a ranking"),
    ]
    for given_state, ratings, ranks, message in cases:
        result, text, kept = panel.submit(given_state, ratings, ranks, "")
        assert result is None and message in text and kept == given_state
    result, text, _ = panel.submit(state, [3, 3, 3], ["1", "2", "3"], "x" * 2001)
    assert result is None and "comment" in text
    assert panel.store.counts()["answers"] == 0 and panel.store.counts()["ratings"] == 0


def test_raters_resume_and_a_second_window_cannot_answer_twice(panel, prepared_study, tmp_path):
    screen, state = panel.start("Rita")
    token = screen.token
    screen2, state2 = panel.resume(token)  # the same rater in a second window
    assert screen2.token is None  # the token is shown once, when it is issued
    nxt, message, state = panel.submit(state, [4, 4, 4], ["3", "1", "2"], "")
    assert message == "Answer saved, thank you." and nxt.progress.startswith("**Trial 2 of 4**")
    nxt2, message2, _ = panel.submit(state2, [1, 1, 1], ["1", "2", "3"], "")
    assert "already answered" in message2 and nxt2.progress.startswith("**Trial 2 of 4**")
    assert [r.rating for r in panel.store.records()] == [4, 4, 4]
    # A new process (new panel on the same database) carries on where Rita stopped.
    reopened = build_panel(prepared_study.directory, panel.store.path, sync=False)
    screen, state = reopened.resume(token.upper().replace("-", " "))  # as pasted, sloppily
    assert screen.progress.startswith("**Trial 2 of 4**")
    for _ in range(3):
        screen, _, state = reopened.submit(state, [2, 3, 4], ["1", "2", "3"], "")
    assert screen.progress.startswith("**All 4 trials answered.**") and state is None
    assert screen.input_image is None and screen.output_images == ()
    assert panel.store.check() == []


def test_several_studies_share_the_tab(
    prepared_study, tiny_zoo, tmp_path, monkeypatch, single_thread
):
    from expert_eval.study import prepare

    inputs = tmp_path / "low"
    inputs.mkdir()
    np.save(inputs / "low.npy", np.random.default_rng(1).normal(size=(32, 64)) * 1e-10)
    sr = prepare(
        inputs,
        "sr4",
        ["classical", "fm-small-2"],
        tmp_path / "sr4",
        zoo_path=tiny_zoo,
        device="cpu",
    )
    monkeypatch.setenv("EXPERT_EVAL_STUDY", f"{prepared_study.directory}:{sr.directory}")
    monkeypatch.delenv("SPACE_ID", raising=False)
    panel = build_panel(None, tmp_path / "ratings.sqlite3")
    assert panel.n_trials == 5 and panel.n_slots == 3
    sizes = set()
    for r in range(12):
        screen, state = panel.start(f"r{r}")
        trial = prepared_study.trial(state["trial_id"]) or sr.trial(state["trial_id"])
        assert screen.n_ranks == len(screen.output_images) == len(trial.outputs)
        sizes.add(screen.n_ranks)
        ranks = [str(k) for k in range(1, screen.n_ranks + 1)]
        _, message, _ = panel.submit(state, [3] * screen.n_ranks, ranks, "")
        assert message == "Answer saved, thank you."
    assert sizes == {2, 3}


def test_admin_view_needs_the_configured_token(panel, prepared_study, monkeypatch):
    monkeypatch.delenv(ADMIN_TOKEN_ENV, raising=False)
    text, plot, files = panel.admin_view("anything")
    assert "disabled" in text and plot is None and files == []
    monkeypatch.setenv(ADMIN_TOKEN_ENV, "s3cret-token")
    for wrong in ("", None, "s3cret", "s3cret-token "):
        text, plot, files = panel.admin_view(wrong)
        assert text == "Wrong admin token." and plot is None and files == []
        assert_blind(text, [prepared_study])
    text, plot, files = panel.admin_view("s3cret-token")
    assert "No answers yet" in text and files == []
    for r in ("ann", "bob"):
        screen, state = panel.start(r)
        panel.submit(state, [5, 3, 1], ["1", "2", "3"], "")
    text, plot, files = panel.admin_view("s3cret-token")
    assert "| ann | 1 |" in text and "FM Small (2 steps)" in text and "Kendall" in text
    assert Path(plot).read_bytes()[:4] == b"\x89PNG"
    ratings = pd.read_csv(files[0])
    assert len(ratings) == 6 and set(ratings["model"]) == set(prepared_study.models)
    assert [Path(f).name for f in files[1:]] == ["summary.csv", "summary.md"]


def test_tab_without_a_study_explains_the_setup(monkeypatch, tmp_path):
    monkeypatch.delenv("EXPERT_EVAL_STUDY", raising=False)
    with gr.Blocks() as demo:
        assert ui.expert_tab() is None
    texts = [b.value for b in demo.blocks.values() if isinstance(b, gr.Markdown)]
    assert any("EXPERT_EVAL_STUDY" in t for t in texts)
    with gr.Blocks():
        assert ui.expert_tab(tmp_path, tmp_path / "db.sqlite3") is None  # not a study folder


def test_rater_name_is_validated_and_escaped(panel):
    with pytest.raises(Exception, match="name"):
        panel.start("   ")
    screen, _ = panel.start("*bold* <img>")
    assert "\\*bold\\* \\<img\\>" in screen.progress
    keys = {k for (k,) in panel.store._read("SELECT rater_key FROM raters")}
    assert rater_key("*bold* <img>") in keys


TOKEN_IN_NOTE = re.compile(r"`([a-z2-9]{4}(?:-[a-z2-9]{4}){4})`")


def test_a_second_client_typing_the_same_name_gets_nothing_of_the_first_rater(
    prepared_study, tmp_path, monkeypatch
):
    from gradio_client import Client

    monkeypatch.delenv("SPACE_ID", raising=False)
    with gr.Blocks() as demo, gr.Tabs():
        panel = ui.expert_tab(prepared_study.directory, tmp_path / "ratings.sqlite3")
    demo.queue()
    _, url, _ = demo.launch(prevent_thread_lock=True, server_port=free_port(), quiet=True)
    try:
        alice = Client(url, download_files=False, verbose=False)
        first = alice.predict("Alice", api_name="/expert_start")
        assert first[0].startswith("**Trial 1 of 4**")
        done = alice.predict("", 5, 3, 1, "1", "2", "3", api_name="/expert_submit")
        assert done[0].startswith("**Trial 2 of 4**") and "1 answered" in done[0]

        # Another client types her name: no trial, no progress, a request for the token.
        other = Client(url, download_files=False, verbose=False)
        for typed in ("Alice", "  ALICE "):
            payload = other.predict(typed, api_name="/expert_start")
            assert "Trial" not in payload[0] and "answered" not in payload[0]
            assert payload[1]["visible"] is False and payload[1]["value"] is None
            assert all(u["value"] is None for u in payload[2:5])
            assert "token" in payload[-1] and "Resume" in payload[-1]
            assert_blind(payload, [prepared_study])
        # ... and cannot answer in her name either.
        refused = other.predict("", 1, 1, 1, None, None, None, api_name="/expert_submit")
        assert "first" in refused[-1]
        for guess in ("", "alice", "aaaa-aaaa-aaaa-aaaa-aaaa"):
            payload = other.predict(guess, api_name="/expert_resume")
            assert "Trial" not in payload[0] and "not known" in payload[-1]
        assert panel.store.counts()["raters"] == 1 and panel.store.counts()["answers"] == 1

        # Her token, issued once with her first trial, brings her back on any client.
        token = TOKEN_IN_NOTE.search(first[-2]).group(1)
        assert f"(?rater={token})" in first[-2]  # the resume link, relative to the page
        back = Client(url, download_files=False, verbose=False)
        payload = back.predict(token, api_name="/expert_resume")
        assert payload[0].startswith("**Trial 2 of 4**") and "1 answered" in payload[0]
        assert payload[-2] == "" and token not in json.dumps(payload)  # shown only once
        assert_blind(payload, [prepared_study])
    finally:
        demo.close()


def test_tokens_are_checked_and_the_page_address_carries_one(panel):
    screen, state = panel.start("Tess")
    token = screen.token
    assert re.fullmatch(r"[a-z2-9]{4}(-[a-z2-9]{4}){4}", token) and state is not None
    assert token in ui.token_note(token) and f"?rater={token}" in ui.token_note(token)
    other, _ = panel.start("Theo")
    assert other.token != token
    wrong = token[:-1] + ("a" if token[-1] != "a" else "b")
    for bad in (wrong, "", "Tess", token + "a", None):
        with pytest.raises(StmZooError, match="not known"):
            panel.resume(bad)
    with pytest.raises(StmZooError, match="token"):
        panel.start("tess")
    again, again_state = panel.resume(f"  {token.upper()} ")
    assert again_state["rater"] == "Tess" and again_state["trial_id"] == state["trial_id"]
    assert ui.token_from_request(gr.Request(query_params={"rater": token})) == token
    assert ui.token_from_request(gr.Request(query_params={})) is None
    assert ui.token_from_request(None) is None
