"""A physics-based simulator of pristine filled-state Si(001):H STM scans (heights in nm).

    from training.simulate import simulate_scan, SimulationParams, SimulatedScan
    scan = simulate_scan(seed=0)  # 512 x 512 px at 0.1953125 nm/px
    scan.heights_nm, scan.pixel_size_nm, scan.params.to_dict()

Modules: `params` (distributions and drawn values), `lattice` (terraces, steps, rows), `defects`,
`scanning` (raster, feedback, noise, levelling), `simulator` (the recipe), `calibrate` (realism
statistics shared by real and simulated scans), `figures` (docs/img/simulator_*.png), `cli`
(`python -m training simulate`). See docs/simulator.md.
"""

from __future__ import annotations

from training.simulate.params import DrawnParams, SimulationParams
from training.simulate.simulator import SimulatedScan, simulate_scan

__all__ = ["DrawnParams", "SimulatedScan", "SimulationParams", "simulate_scan"]
