"""The Si(001):H simulator: lattice physics, determinism, interface, CLI, realism checks."""

from __future__ import annotations

import json
import math
from dataclasses import replace

import numpy as np
import pytest
from scipy import ndimage as ndi
from scipy.signal import find_peaks

from stm_zoo.errors import StmZooError
from stm_zoo.lattice import Peak, row_peaks
from training.__main__ import main as training_main
from training.simulate import SimulatedScan, SimulationParams, simulate_scan
from training.simulate.calibrate import REALISM_TOLERANCES, compare, measure
from training.simulate.lattice import Grid, draw_terraces
from training.simulate.scanning import feedback

ROW_PEAK = 1.0 / 0.768
PIXEL_NM = 100.0 / 512
ONE_STEP = SimulationParams(step_count_probs=(0.0, 1.0))
STAIRCASE = SimulationParams(step_count_probs=(0.0, 0.0, 0.0, 1.0), p_line_level=0.0)


@pytest.fixture(scope="module")
def default_scans() -> list[SimulatedScan]:
    """Four full-size scans with default parameters (seeds 0, 1, 4, 6: with and without steps)."""
    return [simulate_scan(seed) for seed in (0, 1, 4, 6)]


def _terrace_peak(scan: SimulatedScan, level: int) -> Peak:
    """The row peak of one terrace alone (other pixels set to that terrace's mean)."""
    mask = scan.terrace_level == level
    z = np.where(mask, scan.heights_nm, scan.heights_nm[mask].mean())
    return row_peaks(z, scan.pixel_size_nm, max_peaks=1)[0]


def _angle_between(a_deg: float, b_deg: float) -> float:
    """Difference of two orientations (mod 180) in [0, 90]."""
    d = abs(a_deg - b_deg) % 180.0
    return min(d, 180.0 - d)


def test_fft_row_peak_at_1_30(default_scans):
    stepped = [s for s in default_scans if s.params.n_steps > 0]
    assert stepped, "the chosen seeds should include scans with steps"
    for scan in default_scans:
        peaks = row_peaks(scan.heights_nm, scan.pixel_size_nm)
        assert peaks
        for peak in peaks:
            assert abs(peak.k_nm_inv - ROW_PEAK) < 0.07, (scan.params.seed, peak)


def test_no_spurious_peak_at_twice_the_row_frequency(default_scans):
    """The 0.384 nm dimer wave and row harmonics must not leave a peak near 2.6 nm^-1 (they would
    alias at 0.195 nm/px); the row peak dominates everything above 0.8 nm^-1."""
    scan = default_scans[0]
    z = scan.heights_nm - scan.heights_nm.mean()
    power = np.abs(np.fft.fft2(z)) ** 2
    k = np.hypot(*np.meshgrid(*(np.fft.fftfreq(n, PIXEL_NM) for n in z.shape), indexing="ij"))
    rows = power[np.abs(k - ROW_PEAK) < 0.1].max()
    high = power[k > 2.2].max()
    assert high < 0.05 * rows


def test_same_seed_identical_different_seeds_differ():
    a = simulate_scan(11, size_px=96)
    b = simulate_scan(11, size_px=96)
    c = simulate_scan(12, size_px=96)
    assert np.array_equal(a.heights_nm, b.heights_nm)
    assert a.params.to_dict() == b.params.to_dict()
    assert not np.array_equal(a.heights_nm, c.heights_nm)


def test_shape_dtype_pixel_size_and_physical_units_honoured():
    scan = simulate_scan(3, size_px=256, pixel_size_nm=0.1)
    assert scan.heights_nm.shape == (256, 256)
    assert scan.heights_nm.dtype == np.float32
    assert scan.terrace_level.shape == (256, 256)
    assert scan.pixel_size_nm == 0.1
    assert np.isfinite(scan.heights_nm).all()
    # At 0.1 nm/px the rows still sit at 1.30 nm^-1: lengths are physical, not in pixels.
    assert abs(row_peaks(scan.heights_nm, 0.1)[0].k_nm_inv - ROW_PEAK) < 0.07
    params = scan.params.to_dict()
    assert json.loads(json.dumps(params)) == params
    assert params["seed"] == 3 and params["size_px"] == 256


def test_bad_sizes_are_user_errors():
    with pytest.raises(StmZooError, match="size_px"):
        simulate_scan(0, size_px=8)
    with pytest.raises(StmZooError, match="pixel size"):
        simulate_scan(0, size_px=64, pixel_size_nm=0.0)
    with pytest.raises(StmZooError, match="seed"):
        simulate_scan(-1, size_px=64)


def test_rows_turn_90_degrees_across_a_step():
    turned = 0
    for seed in (2, 5):
        scan = simulate_scan(seed, size_px=384, params=ONE_STEP)
        assert scan.params.n_steps == 1
        levels, counts = np.unique(scan.terrace_level, return_counts=True)
        if len(levels) < 2 or counts.min() < 0.15 * scan.terrace_level.size:
            continue
        upper, lower = _terrace_peak(scan, 0), _terrace_peak(scan, 1)
        assert abs(upper.k_nm_inv - ROW_PEAK) < 0.07
        assert abs(_angle_between(upper.angle_deg, lower.angle_deg) - 90.0) < 6.0
        turned += 1
    assert turned, "no seed gave two terraces large enough to compare"


def test_height_histogram_of_a_staircase_has_peaks_one_step_apart():
    scan = simulate_scan(8, params=STAIRCASE)
    assert scan.params.n_steps == 3
    z = scan.heights_nm.astype(np.float64)
    # Terrace medians (ground-truth labels) are one monatomic step apart ...
    medians = [np.median(z[scan.terrace_level == lv]) for lv in np.unique(scan.terrace_level)]
    assert np.allclose(-np.diff(medians), 0.136, atol=0.015)
    # ... and so are the peaks of the height histogram. Each terrace's rows give an arcsine-shaped
    # (two-horned) distribution +-0.03 nm wide; smoothing by 0.02 nm makes it one peak.
    hist, edges = np.histogram(z, bins=np.arange(z.min(), z.max(), 0.004))
    hist = ndi.gaussian_filter1d(hist.astype(float), 5.0)
    peaks, _ = find_peaks(hist, height=0.05 * hist.max(), distance=20)
    centres = 0.5 * (edges[peaks] + edges[peaks + 1])
    assert len(centres) >= 3
    assert np.allclose(np.diff(centres), 0.136, atol=0.02)


def test_sa_edges_straight_sb_edges_rough_and_quantised():
    params = SimulationParams(step_count_probs=(0.0, 0.0, 0.0, 0.0, 1.0))
    grid = Grid(x0_nm=-55.0, y0_nm=-55.0, step_nm=0.065, shape=(1700, 1700))
    found = {"SA": [], "SB": []}
    for seed in range(3):
        terraces = draw_terraces(np.random.default_rng(seed), params, 30.0, grid, 50.0)
        assert len(terraces.edge_types) == 4
        # Edge types alternate because the rows turn at every step.
        assert terraces.edge_types[0] != terraces.edge_types[1]
        for k, kind in enumerate(terraces.edge_types):
            jumps = np.diff(terraces.edges[k])
            jumps = jumps[np.abs(jumps) > 1e-9]
            length_nm = terraces.edges.shape[1] * terraces.du_nm
            found[kind].append(len(jumps) / length_nm)
            unit = 0.768 if kind == "SA" else 0.384
            assert np.allclose(jumps / unit, np.round(jumps / unit), atol=1e-6)
    # Kinks per nm of edge: SB edges are far rougher than SA edges.
    assert np.mean(found["SB"]) > 4.0 * np.mean(found["SA"])


def test_feedback_keeps_dc_and_overshoots_after_a_step():
    line = np.zeros((1, 200))
    line[:, 100:] = 1.0
    out = feedback(line, 0.23, 0.6)
    assert abs(out[0, -1] - 1.0) < 1e-6
    assert abs(out[0, 50]) < 1e-9
    assert out[0, 100:110].max() > 1.05  # ringing: the bright pixels after a pit's far edge


def test_dangling_bonds_sit_on_rows():
    from training.simulate.defects import DB_ATOM_OFFSET_NM, draw_defects

    params = SimulationParams(step_count_probs=(1.0,), db_density_nm2=(0.02, 0.02))
    grid = Grid(x0_nm=-20.0, y0_nm=-20.0, step_nm=0.065, shape=(600, 600))
    rng = np.random.default_rng(0)
    terraces = draw_terraces(rng, params, 20.0, grid, 18.0)
    defects = draw_defects(rng, params, terraces, grid, tip_sigma_nm=0.22)
    assert len(defects.dangling_bonds) > 10
    u, v = terraces.to_lattice(defects.dangling_bonds[:, 1], defects.dangling_bonds[:, 0])
    across = (u if not terraces.rows_along_u(np.zeros(1, int))[0] else v) - terraces.row_phase_nm[0]
    offset = (across + 0.384) % 0.768 - 0.384  # distance from the nearest row centre
    assert np.allclose(np.abs(offset), DB_ATOM_OFFSET_NM, atol=1e-6)


def test_to_scan_is_in_metres():
    scan = simulate_scan(1, size_px=64)
    stm = scan.to_scan()
    assert stm.unit == "m"
    assert np.allclose(stm.data, scan.heights_nm * 1e-9, rtol=1e-6, atol=1e-15)
    assert math.isclose(stm.scan_size_m[0], 64 * scan.pixel_size_nm * 1e-9)


def test_cli_writes_npy_files_and_manifest(tmp_path, capsys):
    out = tmp_path / "sims"
    code = training_main(["simulate", "--n", "2", "--out", str(out), "--seed", "7", "--size", "64"])
    assert code == 0
    manifest = json.loads((out / "simulation.json").read_text())
    assert [f["file"] for f in manifest["files"]] == ["sim_00000.npy", "sim_00001.npy"]
    assert [f["seed"] for f in manifest["files"]] == [7, 8]
    for entry in manifest["files"]:
        data = np.load(out / entry["file"])
        assert data.dtype == np.float32 and data.shape == (64, 64)
        expected = simulate_scan(entry["seed"], size_px=64)
        assert np.array_equal(data, expected.heights_nm)
        assert entry["params"] == expected.params.to_dict()
    assert "wrote 2" in capsys.readouterr().out


def test_cli_sxm_round_trip(tmp_path):
    from stm_zoo import io

    out = tmp_path / "sims"
    assert training_main(["simulate", "--n", "1", "--out", str(out), "--size", "32", "--sxm"]) == 0
    manifest = json.loads((out / "simulation.json").read_text())
    assert manifest["files"][0]["sxm"] == "sxm/sim_00000.sxm"
    scan = io.load_scan(out / "sxm" / "sim_00000.sxm")
    heights = np.load(out / "sim_00000.npy")
    assert scan.unit == "m"
    assert np.allclose(scan.data * 1e9, heights, atol=1e-6)


def test_cli_rejects_bad_options(tmp_path, capsys):
    assert training_main(["simulate", "--n", "0", "--out", str(tmp_path)]) == 2
    assert "--n" in capsys.readouterr().err


def test_realism_against_the_reference_scan(shared_data, default_scans):
    reference = np.load(shared_data / "si001h-reference" / "brockley_23_2_forward.npy")
    ref_stats = measure(reference, PIXEL_NM)
    sim_stats = [measure(s.heights_nm, s.pixel_size_nm) for s in default_scans]
    rows = {r["statistic"]: r for r in compare(ref_stats, sim_stats)}
    failed = {
        name: round(rows[name]["ratio"], 2)
        for name, tolerance in REALISM_TOLERANCES.items()
        if tolerance is not None and not rows[name]["ok"]
    }
    assert not failed, f"simulated / real outside tolerance: {failed}"


def test_replacing_params_changes_the_drawn_values():
    quiet = replace(SimulationParams(), vacancy_density_nm2=(0.0, 0.0), db_density_nm2=(0.0, 0.0))
    scan = simulate_scan(4, size_px=64, params=quiet)
    assert scan.params.n_vacancies == 0 and scan.params.n_dangling_bonds == 0
