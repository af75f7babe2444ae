"""Studies: model configuration strings, preparation, opaque ids and the blinding orders."""

from __future__ import annotations

import json
from collections import Counter

import numpy as np
import pytest

from expert_eval import study as sm
from expert_eval.__main__ import main
from expert_eval.blinding import presentation_order, rater_key
from expert_eval.configurations import ModelSpec, parse_models
from expert_eval.study import Study
from stm_zoo.errors import ModelNotFoundError, StmZooError

MODEL_WORDS = ("classical", "fm", "ddim", "small", "large", "step", "ae")


@pytest.mark.parametrize(
    ("text", "family", "size", "steps", "label"),
    [
        ("fm-small-2", "fm", "small", 2, "FM Small (2 steps)"),
        ("ddim-large-10", "ddim", "large", 10, "DDIM Large (10 steps)"),
        ("ddim-fft-large-10", "ddim-fft", "large", 10, "DDIM Large (FFT, 10 steps)"),
        ("ae-large", "ae", "large", 1, "Autoencoder Large"),
        ("classical", "classical", "small", 1, "Classical (Gwyddion-style)"),
        (" FM-Large-1 ", "fm", "large", 1, "FM Large (1 step)"),
    ],
)
def test_model_configurations_parse_and_print_back(text, family, size, steps, label):
    spec = ModelSpec.parse(text)
    assert (spec.family, spec.size, spec.steps, spec.label) == (family, size, steps, label)
    assert ModelSpec.parse(spec.name) == spec


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("fm-small", "needs a step count"),
        ("fm-small-0", "needs a step count"),
        ("ae-large-5", "takes no steps"),
        ("ae-small", "large only"),
        ("ddim-fft-small-10", "large only"),
        ("gan-large-2", "FAMILY-SIZE"),
        ("fm-medium-2", "FAMILY-SIZE"),
        ("", "FAMILY-SIZE"),
    ],
)
def test_bad_model_configurations_say_what_to_write(text, message):
    with pytest.raises(StmZooError, match=message):
        ModelSpec.parse(text)


def test_a_study_needs_two_to_eight_distinct_models():
    with pytest.raises(StmZooError, match="twice"):
        parse_models(["fm-small-2", "FM-small-2"])
    with pytest.raises(StmZooError, match="2 to 8"):
        parse_models(["classical"])


def test_prepared_study_is_complete_and_opaque(prepared_study):
    study = Study.load(prepared_study.directory)
    assert study.to_json() == prepared_study.to_json()
    assert len(study.trials) == 4 and study.models == ["classical", "fm-small-2", "ddim-small-3"]
    ids = [study.study_id, *(i.input_id for i in study.inputs)]
    ids += [t.trial_id for t in study.trials]
    ids += [o.output_id for t in study.trials for o in t.outputs]
    assert len(set(ids)) == len(ids) and all(len(i) == 16 for i in ids)
    for trial in study.trials:
        assert [o.model for o in trial.outputs] == study.models
        shapes = {np.load(study.output_path(o.output_id)).shape for o in trial.outputs}
        assert shapes == {study.input_of(trial).shape} == {(64, 64)}
        outputs = [np.load(study.output_path(o.output_id)) for o in trial.outputs]
        assert all(o.dtype == np.float32 and np.isfinite(o).all() for o in outputs)
        # really different models' outputs (heights ~1e-10 m: compare relative to their scale)
        assert np.abs(outputs[0] - outputs[1]).max() > 1e-2 * np.abs(outputs[0]).max()
    # Only the manifest knows the models: no other file name or content says which is which.
    files = sorted(p for p in study.directory.rglob("*") if p.is_file())
    assert {p.name for p in files if p.suffix != ".npy"} == {sm.MANIFEST_NAME}
    for path in files:
        if path.suffix == ".npy":
            assert not any(w in path.name.lower() for w in MODEL_WORDS if w != "ae")
            array = np.load(path, allow_pickle=False)  # a bare float array, no pickled metadata
            assert array.dtype == np.float32 and array.ndim == 2
    manifest = json.loads((study.directory / sm.MANIFEST_NAME).read_text())
    assert len(bytes.fromhex(manifest["secret"])) == 32


def test_prepare_is_reproducible_for_a_seed(prepared_study, tiny_zoo, tmp_path, single_thread):
    again = sm.prepare(
        prepared_study.directory.parent / "inputs",
        "restore",
        ["fm-small-2", "classical"],
        tmp_path / "again",
        seed=3,
        device="cpu",
        zoo_path=tiny_zoo,
    )
    # fm is model j=1 in the first study and j=0 here: seeds differ, so outputs differ ...
    first = prepared_study.trials[0].outputs[1]
    second = again.trials[0].outputs[0]
    assert first.model == second.model == "fm-small-2" and first.seed != second.seed
    # ... while the classical baseline is deterministic.
    a = np.load(prepared_study.output_path(prepared_study.trials[0].outputs[0].output_id))
    b = np.load(again.output_path(again.trials[0].outputs[1].output_id))
    np.testing.assert_array_equal(a, b)


def test_prepare_refuses_a_non_empty_folder_and_leaves_nothing_on_failure(
    tiny_zoo, tmp_path, single_thread
):
    inputs = tmp_path / "in"
    inputs.mkdir()
    np.save(inputs / "scan.npy", np.zeros((32, 32), np.float32))
    occupied = tmp_path / "occupied"
    occupied.mkdir()
    (occupied / "keep.txt").write_text("x")
    with pytest.raises(StmZooError, match="not empty"):
        sm.prepare(inputs, "restore", ["classical", "fm-small-2"], occupied, zoo_path=tiny_zoo)
    with pytest.raises(ModelNotFoundError):
        sm.prepare(
            inputs, "restore", ["classical", "ae-large"], tmp_path / "new", zoo_path=tiny_zoo
        )
    (inputs / "broken.sxm").write_bytes(b"not a scan")
    with pytest.raises(StmZooError, match="broken.sxm"):
        sm.prepare(
            inputs,
            "restore",
            ["classical", "fm-small-2"],
            tmp_path / "new",
            device="cpu",
            zoo_path=tiny_zoo,
        )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in", "occupied"]


def test_load_reports_a_damaged_study(prepared_study, tmp_path):
    with pytest.raises(StmZooError, match="holds no study.json"):
        Study.load(tmp_path)
    (tmp_path / sm.MANIFEST_NAME).write_text('{"study_id": "x"}')
    with pytest.raises(StmZooError, match="not a valid study manifest"):
        Study.load(tmp_path)
    copy = tmp_path / "copy"
    copy.mkdir()
    (copy / sm.MANIFEST_NAME).write_text(prepared_study.to_json())
    with pytest.raises(StmZooError, match="missing"):
        Study.load(copy)


def test_presentation_order_is_fixed_per_rater_and_trial_and_varies_between_raters():
    secret = "ab" * 32
    assert presentation_order(secret, "alice", "t1", 3) == presentation_order(
        secret, "alice", "t1", 3
    )
    orders = Counter(tuple(presentation_order(secret, f"r{i}", "t1", 3)) for i in range(600))
    assert len(orders) == 6 and min(orders.values()) > 60  # all 3! orders, roughly uniform
    per_trial = {tuple(presentation_order(secret, "alice", f"t{i}", 3)) for i in range(40)}
    assert len(per_trial) > 1
    other_secret = [presentation_order("cd" * 32, f"r{i}", "t1", 3) for i in range(20)]
    assert other_secret != [presentation_order(secret, f"r{i}", "t1", 3) for i in range(20)]


def test_rater_identity_ignores_case_and_spacing():
    assert rater_key("  Dr.  Alice  Smith ") == rater_key("dr. alice smith")
    for bad in ("", "   ", "x" * 65, "a\x00b", "bell\x07"):
        with pytest.raises(StmZooError):
            rater_key(bad)


def test_cli_prepare_writes_a_study(tiny_zoo, tmp_path, capsys, single_thread):
    inputs = tmp_path / "in"
    inputs.mkdir()
    for i in range(2):
        np.save(inputs / f"s{i}.npy", np.random.default_rng(i).normal(size=(32, 48)) * 1e-10)
    code = main(
        [
            "prepare",
            "--inputs",
            str(inputs),
            "--task",
            "sr2",
            "--models",
            "classical",
            "fm-small-2",
            "--out",
            str(tmp_path / "study"),
            "--zoo",
            str(tiny_zoo),
        ]
    )
    assert code == 2  # the tiny zoo has no sr2 entries: a one-line error, no traceback
    assert "sr2/fm-small" in capsys.readouterr().err
    code = main(
        [
            "prepare",
            "--inputs",
            str(inputs),
            "--task",
            "sr2",
            "--models",
            "classical",
            "classical",
            "--out",
            str(tmp_path / "study"),
        ]
    )
    assert code == 2 and "twice" in capsys.readouterr().err
    code = main(
        [
            "prepare",
            "--inputs",
            str(inputs),
            "--task",
            "restore",
            "--models",
            "classical",
            "fm-small-2",
            "--out",
            str(tmp_path / "study"),
            "--zoo",
            str(tiny_zoo),
            "--device",
            "cpu",
            "--name",
            "pilot",
        ]
    )
    assert code == 0 and "2 trials x 2 models" in capsys.readouterr().out
    study = Study.load(tmp_path / "study")
    assert study.name == "pilot" and study.provenance["device"] == "cpu"
    assert [i.source for i in study.inputs] == ["s0.npy", "s1.npy"]


def test_sr_study_outputs_have_k_times_the_lines(tiny_zoo, tmp_path, single_thread):
    inputs = tmp_path / "in"
    inputs.mkdir()
    # 32 lines: 8 at the x4 line pitch, 32 on the model's grid, the smallest frame it takes
    low = np.random.default_rng(0).normal(size=(32, 64)).astype(np.float32) * 1e-10
    np.save(inputs / "low.npy", low)
    study = sm.prepare(
        inputs, "sr4", ["classical", "fm-small-2"], tmp_path / "s", zoo_path=tiny_zoo, device="cpu"
    )
    assert study.task == "sr4" and study.inputs[0].shape == (32, 64)
    for output in study.trials[0].outputs:
        assert np.load(study.output_path(output.output_id)).shape == (128, 64)
