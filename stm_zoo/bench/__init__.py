"""Inference benchmarks: per-step latency at 128x128 and end-to-end restore time of a 512x512 scan.

`python -m stm_zoo bench [--device cpu cuda] [--repeats N] [--out FILE.md]` prints markdown tables:

1. Per-step latency of every network at 128x128, batch 1, next to the paper's Tables VIII / XIV
   (AMD Ryzen 5 2600 CPU, RTX 3060 Ti GPU; `stm_zoo.paper`). A "step" is what the sampler
   repeats: two network evaluations for flow matching (RK2 midpoint), one for DDIM, one forward
   pass for the autoencoder. Timed under fp32, fp32 channels_last and bf16 channels_last.
2. End-to-end restore of a 512x512 scan through `stm_zoo.restore` (tiling, per-tile
   normalisation, sampling, blending) with FM small at 2 steps, in several configurations, each as a
   ratio against a naive baseline measured in the same process (`measure.naive_fn`: the engine's
   tile function one tile per network call with fp32 NCHW weights), and with the PSNR of its output
   against the baseline's (how much the speed-up changes the result). Configurations are timed
   round-robin, so a change of load during the run hits them all alike.

The networks are the random initialisation of each entry's architecture (the zoo's configs, no
files needed): latency depends on the shapes and the operations, not on the weights' values. The
zero-initialised output layer is re-drawn at random, so outputs (and the PSNR comparisons between
configurations) depend on every layer, as they do for trained weights.

The machine may be shared: each table states the 1-minute load average next to its numbers, times
are the minimum (least disturbed) and the median over repeats, and the speed-ups are ratios
measured in the same run.

Modules: `measure` (what one run does: a sampler step, restore, the naive baseline; random-weight
models and the synthetic scan), `suite` (the modes and variants, `run_bench`), `report` (markdown),
`cli` (the command line). The timing itself is `stm_zoo.timing`'s.
"""
