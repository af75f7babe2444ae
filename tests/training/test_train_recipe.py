"""Training-recipe pieces: crops, the one tile normalisation, warm starts, the new config fields."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from stm_zoo.entry_format import EntryConfig, write_entry
from stm_zoo.errors import StmZooError
from stm_zoo.inference import make_tile_fn
from stm_zoo.nn import UNet, UNetConfig
from stm_zoo.preprocess import normalise_tiles
from stm_zoo.zoo import LoadedModel
from training import checkpoint, distributed, loader, network, validation
from training import train as tr
from training.configs import TrainConfig, preset
from training.degradations.normalise import to_symmetric_range

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_random_crops_are_renormalised_windows_of_the_same_place() -> None:
    clean = torch.linspace(-1, 1, 128 * 128).view(1, 1, 128, 128).repeat(3, 1, 1, 1)
    degraded = -clean
    g = torch.Generator().manual_seed(0)
    c, d = tr.random_crops(clean, degraded, 64, g)
    assert c.shape == d.shape == (3, 1, 64, 64)
    for i in range(3):
        assert float(c[i].min()) == -1.0 and float(c[i].max()) == 1.0
    torch.testing.assert_close(c, -d)  # the same window in both images


@pytest.mark.parametrize(
    "flat",
    [
        np.full((1, 16, 16), 3.0, dtype=np.float32),
        # near-flat: float32 rounding of one level (a few ulps), not a surface
        (3.0 + np.random.default_rng(0).integers(0, 4, (1, 16, 16)) * 2.4e-7).astype(np.float32),
        np.full((1, 16, 16), -2e-9, dtype=np.float32) * (1 + 1e-7),
    ],
    ids=["flat", "near-flat", "flat-metres"],
)
def test_flat_tiles_normalise_to_zero_in_training_and_inference(flat: np.ndarray) -> None:
    """The one normalisation: the pipeline, the training crops and the inference tiles."""
    assert np.all(normalise_tiles(flat)[0] == 0)
    assert np.all(to_symmetric_range(flat[0]) == 0)
    big = torch.from_numpy(np.tile(flat, (1, 2, 2)))[None]  # (1, 1, 32, 32), same values
    crop, degraded_crop = tr.random_crops(big, big.clone(), 16, torch.Generator().manual_seed(0))
    assert torch.all(crop == 0) and torch.all(degraded_crop == 0)
    seen = {}

    class Spy(torch.nn.Module):
        def forward(self, x, t, cond):
            seen["cond"] = cond.clone()
            return cond

    config = EntryConfig("restore", "ae", "large", UNetConfig.autoencoder())
    run = make_tile_fn(LoadedModel(config, Spy(), "cpu", "float32", "test"), steps=1)
    out = run(flat, None)
    assert torch.all(seen["cond"] == 0)
    np.testing.assert_allclose(out, flat, rtol=1e-6)  # and the flat tile comes back at its level


def test_a_real_small_relief_is_not_flat() -> None:
    """1 pm of corrugation on a 100 nm piezo offset is a surface, not rounding."""
    rng = np.random.default_rng(1)
    tile = (100e-9 + 1e-12 * rng.standard_normal((1, 16, 16))).astype(np.float32)
    normalised = normalise_tiles(tile)[0]
    assert normalised.min() == -1 and normalised.max() == 1


def test_normalisation_matches_the_pipeline_bit_for_bit() -> None:
    image = np.random.default_rng(0).normal(size=(32, 32))
    ours = normalise_tiles(image)[0].astype(np.float32)
    np.testing.assert_array_equal(ours, to_symmetric_range(image))


def test_warm_start_loads_matching_weights(tmp_path) -> None:
    small = dict(channels=(8, 16), blocks_per_level=(1, 1), middle_blocks=1, norm_groups=4)
    source = UNet(UNetConfig(**small, time_scale=1000.0))
    for p in source.parameters():
        torch.nn.init.normal_(p, std=0.1)
    entry = EntryConfig("restore", "fm", "small", source.config)
    write_entry(tmp_path / "e", entry, source.state_dict(), "card", "float32")
    target = UNet(UNetConfig(**small, time_scale=1.0, global_context=True, residual=True))
    loaded = network.warm_start(target, tmp_path / "e")
    assert loaded == len(source.state_dict())
    torch.testing.assert_close(target.stem.weight, source.stem.weight)
    # The new global-context branch keeps its zero output: the warm network is unchanged by it.
    assert torch.all(target.global_mlp[-1].weight == 0)
    with pytest.raises(StmZooError, match="cannot read"):
        network.warm_start(target, tmp_path / "nowhere")


def test_new_config_fields_are_validated_and_reach_the_network() -> None:
    base = preset("restore/fm-small@cpu")
    config = TrainConfig(
        **{
            **base.to_dict(),
            "prediction": "x0",
            "time_sampling": "grid",
            "crop_px": 64,
            "global_context": True,
        }
    )
    net = network.network_config(config)
    assert net.residual and net.global_context
    assert network.config_method(config).prediction == "x0"
    with pytest.raises(StmZooError, match="crop-px"):
        TrainConfig(**{**base.to_dict(), "crop_px": 50})
    with pytest.raises(StmZooError, match="prediction"):
        TrainConfig(**{**base.to_dict(), "prediction": "v"})


def test_x0_entry_round_trips_through_the_zoo(tmp_path) -> None:
    from stm_zoo.zoo import load_entry

    net = UNet(UNetConfig.small(time_scale=1000.0, residual=True))
    entry = EntryConfig("restore", "fm", "small", net.config, prediction="x0")
    write_entry(tmp_path, entry, net.state_dict(), "card", "bfloat16")
    loaded = load_entry(tmp_path, device="cpu")
    assert loaded.config.prediction == "x0"
    assert loaded.config.method().prediction == "x0"


def test_run_state_defaults_to_the_user_cache(monkeypatch, tmp_path) -> None:
    monkeypatch.delenv("STM_ZOO_RUNS", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert checkpoint.default_runs_dir() == tmp_path / "cache" / "stm-zoo" / "runs"
    monkeypatch.setenv("STM_ZOO_RUNS", str(tmp_path / "mine"))
    assert checkpoint.default_runs_dir() == tmp_path / "mine"


def test_loader_workers_are_capped_at_the_usable_cpus() -> None:
    import os
    import warnings

    from torch.utils.data import TensorDataset

    cpus = len(os.sched_getaffinity(0))
    assert loader.loader_workers(0) == 0
    assert loader.loader_workers(cpus + 7) == cpus
    assert loader.loader_workers(1) == 1
    # The full presets ask for 4 workers: on a smaller machine the loader must not warn (PyTorch
    # warned twice per epoch, when the loader was built and when it was iterated).
    config = TrainConfig(task="restore", family="fm", size="small", num_workers=cpus + 3)
    dataset = TensorDataset(torch.zeros(8, 1, 4, 4))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        batches = loader.epoch_loader(
            dataset, 0, 0, 2, config, distributed.Distributed(), pin_memory=False
        )
        batches.check_worker_number_rationality()
    assert batches.num_workers == cpus


def test_validation_grids_label_their_columns(tmp_path) -> None:
    from PIL import Image

    clean = torch.zeros(2, 1, 32, 32)
    data = validation.ValidationSet(clean, clean + 0.5, torch.zeros_like(clean), 20.0, 0.5)
    outputs = {"2steps": np.zeros((2, 32, 32)), "5steps": np.zeros((2, 32, 32))}
    grid = np.asarray(Image.open(validation.save_grid(tmp_path / "g.png", data, outputs)))
    assert grid.shape == (validation.GRID_HEADER_PX + 2 * 32 + 2, 4 * 32 + 3 * 2)
    header = grid[: validation.GRID_HEADER_PX]
    for column in range(4):  # every column has dark label text on the white header
        assert (header[:, column * 34 : column * 34 + 32] < 128).any()
    assert validation.grid_label("10steps") == "10 steps"
    assert validation.grid_label("direct") == "direct"
