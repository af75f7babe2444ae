"""DDP: two CPU processes under torchrun (gloo) train a few steps and end with identical weights."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from training.shards import build_dataset
from training.sources import simulate_sources

REPO_ROOT = Path(__file__).resolve().parents[2]

WORKER = textwrap.dedent(
    """
    import os, sys
    from safetensors.torch import save_file
    from training.configs import TrainConfig
    from training.train import train

    data, zoo, run, out = sys.argv[1:5]
    config = TrainConfig(
        task="restore", family="fm", size="small", steps=6, batch=4, lr=1e-3, warmup_steps=2,
        ema_decay=0.9, val_every=0, val_samples=2, val_steps=(1,), checkpoint_every=3,
        log_every=3, num_workers=0, channels=(8, 16, 32), blocks_per_level=(1, 1, 1),
        norm_groups=8,
    )
    result = train(config, data, zoo, run_dir=run, progress=False, device="cpu")
    rank = int(os.environ["RANK"])
    save_file({k: v.contiguous() for k, v in result.network.state_dict().items()},
              os.path.join(out, f"ema-rank{rank}.safetensors"))
    print(f"rank {rank} done at step {result.step}, entry {result.entry_dir}")
    """
)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("ddp-data") / "restore"
    sources = simulate_sources(3, seed=4, size_px=160, workers=1)
    build_dataset(sources, "restore", out, n_train=16, n_val=2, n_test=0, seed=4, workers=1)
    return out


def test_two_gloo_processes_hold_identical_weights(data_dir, tmp_path):
    worker = tmp_path / "worker.py"
    worker.write_text(WORKER)
    out = tmp_path / "out"
    out.mkdir()
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO_ROOT), os.environ.get("PYTHONPATH", "")]),
        "OMP_NUM_THREADS": "1",
    }
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
    folders = [str(p) for p in (data_dir, tmp_path / "zoo", tmp_path / "run", out)]
    command = [*torchrun, "--nproc_per_node", "2", str(worker), *folders]
    done = subprocess.run(
        command, env=env, capture_output=True, text=True, timeout=300, cwd=tmp_path
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "rank 0 done at step 6" in done.stdout and "rank 1 done at step 6" in done.stdout

    # The EMA is a running average of every step's weights: equal EMAs mean equal trajectories.
    rank0, rank1 = (load_file(str(out / f"ema-rank{r}.safetensors")) for r in (0, 1))
    assert rank0.keys() == rank1.keys()
    for name in rank0:
        assert torch.equal(rank0[name], rank1[name]), name
    # Training really moved the weights (the zero-initialised output layer is no longer zero).
    assert rank0["out_conv.weight"].abs().sum() > 0

    entry = tmp_path / "zoo" / "restore" / "fm-small"
    config = json.loads((entry / "config.json").read_text())
    assert config["training"]["device"].endswith("x 2")
    assert config["training"]["samples_seen"] == 24  # the global batch of 4, 2 per process
