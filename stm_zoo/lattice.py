"""The Si(001):H dimer rows in a scan's power spectrum: find them, follow them through a model.

Every zoo model was trained on Si(001):H, whose dimer rows repeat every `DIMER_ROW_PERIOD_NM`
(0.77 nm); on different terraces they run at right angles, so a scan shows one or two row peaks
at 1.30 nm^-1 in its 2-D power spectrum (Hann-windowed, plane-levelled, frequencies in nm^-1 from
the scan's pixel size). Two questions are answered from one FFT each:

- `check_input`: does the input show those rows? If not, it is outside the models' training
  domain: no periodic lattice at all, a lattice at another period (a wrong pixel size, another
  surface), or a hexagonal one (three directions 120 degrees apart, e.g. Si(111)).
- `compare_peaks`: did the model keep them? Each input peak is followed into the output by its
  orientation; a shift of more than `MAX_PEAK_SHIFT` in frequency or a power below
  `MIN_PEAK_POWER` of the input's is what `evaluation.reference` calls doing harm.

When the slow axis is too coarse to show the rows (super-resolution inputs: every k-th line), only
orientations whose slow-axis component stays below that axis's Nyquist frequency are searched,
as aliases of the others land anywhere.

One file because both questions run the same steps (Hann-windowed spectrum, whitening, the peak
search on one frequency grid) and share the thresholds below; its length is that one job.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

DIMER_ROW_PERIOD_NM = 0.77
ROW_K_NM_INV = 1.0 / DIMER_ROW_PERIOD_NM
ROW_BAND_NM_INV = (0.8, 2.0)
"""Where `row_peaks` looks for a dimer-row peak, distortions included."""
SEARCH_BAND_NM_INV = (0.3, 2.5)
"""Where `check_input` looks for any lattice (periods 0.4 to 3.3 nm)."""
ROW_TOLERANCE = 0.12
"""A lattice peak within this fraction of 1 / 0.77 nm counts as the dimer rows (piezo calibration
errors; Si(111)'s 0.67 nm rows are 15 % away)."""
MIN_PROMINENCE = 8.0
"""A lattice peak's 5x5-bin power over what the patch would hold without it (see `Peak`);
smooth random surfaces and white noise stay below 4."""
OTHER_LATTICE_RATIO = 0.3
"""Another lattice peak with this fraction of the rows' power (and not the rows' second
orientation, 90 degrees away) means another surface: hexagonal when it sits 45-75 degrees from the
rows at a radius within 25 %, as in Si(111)."""
MIN_FRAME_PERIODS = 12
"""The frame must span this many row periods (9 nm) for the peak to be resolved."""
MAX_PEAK_SHIFT = 0.05
"""A model that moves a dimer-row peak by more than this fraction of its frequency does harm."""
MIN_PEAK_POWER = 0.80
"""A model that keeps less than this fraction of a dimer-row peak's power (per pixel) does harm."""
PixelSize = float | tuple[float, float]


@dataclass(frozen=True)
class Peak:
    """One lattice peak of a power spectrum.

    Attributes:
        k_nm_inv: radial position (centroid of a 5x5-bin patch), nm^-1.
        angle_deg: orientation of the wave vector in [0, 180), from the fast axis towards the slow.
        power: the patch's power, in height units squared times the pixel count (compare peaks of
            images of different sizes through `power / pixels`).
        prominence: power over what the patch would hold without the peak: the larger of 25
            times the median bin at its radius and the median patch at 0.6-0.8 and 1.25-1.45
            times its radius in its own direction.
    """

    k_nm_inv: float
    angle_deg: float
    power: float
    prominence: float = math.inf

    @property
    def period_nm(self) -> float:
        return 1.0 / self.k_nm_inv


def _pitch(pixel_size_nm: PixelSize) -> tuple[float, float]:
    """(x, y) pixel pitch in nm from one number (square pixels) or a pair."""
    if isinstance(pixel_size_nm, tuple):
        return float(pixel_size_nm[0]), float(pixel_size_nm[1])
    return float(pixel_size_nm), float(pixel_size_nm)


def plane_levelled(heights: np.ndarray) -> np.ndarray:
    """(H, W) float32 heights minus their least-squares plane (from three sums: the centred
    coordinates are orthogonal, so no solve is needed)."""
    h, w = heights.shape
    y = np.linspace(-1.0, 1.0, h, dtype=np.float32)[:, None]
    x = np.linspace(-1.0, 1.0, w, dtype=np.float32)[None, :]
    z = np.asarray(heights, dtype=np.float32)
    z = z - np.float32(z.mean(dtype=np.float64))
    slope_x = (z * x).sum(dtype=np.float64) / (h * (x**2).sum(dtype=np.float64))
    slope_y = (z * y).sum(dtype=np.float64) / (w * (y**2).sum(dtype=np.float64))
    return z - np.float32(slope_x) * x - np.float32(slope_y) * y


@dataclass(frozen=True)
class _Grid:
    """The frequencies of one spectrum shape and pitch, and the index arrays the search needs.

    Attributes:
        k: (H, W, 2) (ky, kx) in nm^-1; radius: (H, W) |k|; step: (dky, dkx) bin size.
        window: (H, W) the 2-D Hann window; window_power: sum of its squares.
        half: flat indices of one half-plane (every orientation once), sorted by radius;
        half_radius, half_angle_deg: their radii (ascending) and orientations in [0, 180);
        half_inner: whether a 5x5 patch around them stays clear of the Nyquist edges;
        ring: (H, W) index of each bin's 2 % log ring of radius.
    """

    k: np.ndarray
    radius: np.ndarray
    step: tuple[float, float]
    window: np.ndarray
    window_power: float
    half: np.ndarray
    half_radius: np.ndarray
    half_angle_deg: np.ndarray
    half_inner: np.ndarray
    ring: np.ndarray


@lru_cache(maxsize=4)
def _grid(shape: tuple[int, int], px_x: float, px_y: float) -> _Grid:
    h, w = shape
    ky = np.fft.fftfreq(h, px_y).astype(np.float32)
    kx = np.fft.fftfreq(w, px_x).astype(np.float32)
    k = np.stack(np.meshgrid(ky, kx, indexing="ij"), axis=-1)
    radius = np.hypot(k[..., 0], k[..., 1])
    window = np.outer(np.hanning(h), np.hanning(w)).astype(np.float32)
    # The spectrum of a real image is symmetric: one half-plane holds every orientation once.
    in_half = (k[..., 1] > 0) | ((k[..., 1] == 0) & (k[..., 0] > 0))
    half = np.flatnonzero(in_half)
    half = half[np.argsort(radius.ravel()[half], kind="stable")]
    ring = np.floor(np.log(np.maximum(radius, 1e-12)) / np.log(1.02))
    ring = np.clip(ring - ring.ravel()[half].min(), 0, None).astype(np.int64)
    step = (float(abs(ky[1])) if h > 1 else 1.0, float(abs(kx[1])) if w > 1 else 1.0)
    half_k = k.reshape(-1, 2)[half]
    # Patches must not wrap around the Nyquist edges (their centroids would be meaningless).
    inner = (np.abs(half_k[:, 0]) < (h // 2 - 2) * step[0]) & (
        np.abs(half_k[:, 1]) < (w // 2 - 2) * step[1]
    )
    grid = _Grid(
        k,
        radius,
        step,
        window,
        float(np.sum(window**2)),
        half,
        radius.ravel()[half],
        _orientation(half_k),
        inner,
        ring,
    )
    for array in (k, radius, window, grid.half, grid.half_angle_deg, grid.half_inner, ring):
        array.flags.writeable = False
    return grid


def power_spectrum(heights: np.ndarray, pixel_size_nm: PixelSize) -> tuple[np.ndarray, np.ndarray]:
    """Hann-windowed 2-D power spectrum of the plane-levelled heights, with its frequencies.

    Args:
        heights: (H, W) heights in any unit.
        pixel_size_nm: pixel pitch in nm, one number or (x, y).

    Returns:
        power: (H, W) float32 |FFT|^2 / (sum of window^2), unshifted (white noise of standard
            deviation s gives s^2 per bin).
        k: (H, W, 2) spatial frequency (ky, kx) of each bin in nm^-1 (read-only).
    """
    from scipy import fft

    grid = _grid(heights.shape, *_pitch(pixel_size_nm))
    h, w = heights.shape
    # The plane goes first: a tilt would leak through the window into the low frequencies.
    spectrum = fft.rfft2(plane_levelled(heights) * grid.window)
    half = (spectrum.real**2 + spectrum.imag**2) / np.float32(grid.window_power)
    # The other half from the symmetry of a real image's spectrum: P(-ky, -kx) = P(ky, kx).
    power = np.empty((h, w), dtype=np.float32)
    power[:, : half.shape[1]] = half
    rest = np.arange(half.shape[1], w)
    power[:, rest] = half[(-np.arange(h)) % h][:, w - rest]
    return power, grid.k


def _orientation(k: np.ndarray) -> np.ndarray:
    return np.degrees(np.arctan2(k[..., 0], k[..., 1])) % 180.0


def _turn(a: np.ndarray | float, b: float) -> np.ndarray | float:
    """Angle in [0, 90] between orientations `a` and `b`, both in [0, 180)."""
    diff = np.abs(np.asarray(a) - b)
    return np.minimum(diff, 180.0 - diff)


def find_peaks(
    power: np.ndarray,
    pixel_size_nm: PixelSize,
    band_nm_inv: tuple[float, float] = ROW_BAND_NM_INV,
    max_peaks: int = 2,
    min_ratio: float = 0.05,
    allowed: np.ndarray | None = None,
    by_prominence: bool = False,
) -> list[Peak]:
    """The strongest (or most prominent) peaks of a power spectrum inside a radial band.

    Each next peak must be at least 20 degrees away in orientation from those found (a second
    terrace with rows turned by 90 degrees) and hold `min_ratio` of the first one's power.

    Args:
        power: (H, W) from `power_spectrum`; pixel_size_nm: the pitch it was computed with.
        band_nm_inv: (low, high) radius of the search annulus.
        max_peaks: how many peaks to report at most.
        min_ratio: power of a secondary peak relative to the first, below which it is ignored.
        allowed: (H, W) bool, where else a peak may sit (None: anywhere in the band).
        by_prominence: rank 5x5-bin patches by their power over the typical power at their
            radius (so that the rising spectrum of the large-scale shape does not hide a
            lattice) instead of ranking bins by power.

    Returns:
        The peaks in the order found: by power, or by prominence.
    """
    grid = _grid(power.shape, *_pitch(pixel_size_nm))
    first, last = np.searchsorted(grid.half_radius, band_nm_inv)
    where = grid.half[first:last]
    usable = grid.half_inner[first:last]
    if allowed is not None:
        usable = usable & allowed.ravel()[where]
    where, orient = where[usable], grid.half_angle_deg[first:last][usable]
    ranked = _whitened(power, grid) if by_prominence else power
    candidates = ranked.ravel()[where]
    peaks: list[Peak] = []
    while len(peaks) < max_peaks and candidates.size:
        best = int(np.argmax(candidates))
        iy, ix = np.unravel_index(where[best], power.shape)
        total, centroid = _centroid(power, grid.k, int(iy), int(ix))
        angle = float(np.degrees(np.arctan2(centroid[0], centroid[1])) % 180.0)
        background = _background(power, grid, centroid)
        peak = Peak(float(np.hypot(*centroid)), angle, total, total / max(background, 1e-300))
        # Drop this orientation; the next maximum must be a different one.
        keep = (_turn(orient, angle) >= 20.0) & (_turn(orient, float(orient[best])) >= 20.0)
        where, candidates, orient = where[keep], candidates[keep], orient[keep]
        if peaks and peak.power < min_ratio * peaks[0].power:
            break
        peaks.append(peak)
    return peaks


def _whitened(power: np.ndarray, grid: _Grid) -> np.ndarray:
    """(H, W) 5x5-bin sums of power over the geometric-mean power of its 2 % ring of radius."""
    from scipy import ndimage as ndi

    log_power = np.log(np.maximum(power, np.float32(1e-30)))
    rings = grid.ring.ravel()[grid.half]
    count = np.bincount(rings, minlength=grid.ring.max() + 1)
    total = np.bincount(rings, log_power.ravel()[grid.half], minlength=grid.ring.max() + 1)
    mean = (total / np.maximum(count, 1)).astype(np.float32)
    return ndi.uniform_filter(np.exp(log_power - mean[grid.ring]), 5, mode="wrap")


def _patch(power: np.ndarray, iy: int, ix: int) -> np.ndarray:
    """The 5x5 bins of `power` around (iy, ix), wrapping around the edges."""
    h, w = power.shape
    return power[np.ix_(np.arange(iy - 2, iy + 3) % h, np.arange(ix - 2, ix + 3) % w)]


def _centroid(power: np.ndarray, k: np.ndarray, iy: int, ix: int) -> tuple[float, np.ndarray]:
    """(power, power-weighted mean (ky, kx)) of the 5x5 bins around (iy, ix)."""
    patch = _patch(power, iy, ix).astype(np.float64)
    total = float(patch.sum())
    h, w = power.shape
    near = k[np.ix_(np.arange(iy - 2, iy + 3) % h, np.arange(ix - 2, ix + 3) % w)]
    return total, (patch[..., None] * near).sum(axis=(0, 1)) / max(total, 1e-300)


def _background(power: np.ndarray, grid: _Grid, centroid: np.ndarray) -> float:
    """What a 5x5 patch at a peak would hold without the peak.

    The larger of 25 times the median bin at its radius (within 4 %, any orientation: rejects a
    smooth, isotropic spectrum) and the median patch at 0.6-0.8 and 1.25-1.45 times its radius
    in its own direction (rejects broad streaks, such as the line-to-line noise along the
    slow-axis frequencies).
    """
    radius = float(np.hypot(*centroid))
    first, last = np.searchsorted(grid.half_radius, (0.96 * radius, 1.04 * radius))
    ring = power.ravel()[grid.half[first:last]]
    around = 25.0 * float(np.median(ring)) if ring.size else 0.0
    h, w = power.shape
    step_y, step_x = grid.step
    along = [
        float(_patch(power, round(ky / step_y), round(kx / step_x)).sum())
        for ky, kx in (centroid * s for s in (0.6, 0.7, 0.8, 1.25, 1.35, 1.45))
        if abs(ky / step_y) < h // 2 - 2 and abs(kx / step_x) < w // 2 - 2
    ]
    return max(around, float(np.median(along)) if along else 0.0)


def row_peaks(
    heights: np.ndarray, pixel_size_nm: PixelSize, max_peaks: int = 2, min_ratio: float = 0.05
) -> list[Peak]:
    """The dimer-row peaks (in `ROW_BAND_NM_INV`) of a scan's power spectrum, strongest first.

    Args:
        heights: (H, W) heights in any unit.
        pixel_size_nm: pixel pitch in nm, one number or (x, y).
        max_peaks, min_ratio: as in `find_peaks`.
    """
    power, _ = power_spectrum(heights, pixel_size_nm)
    return find_peaks(power, pixel_size_nm, ROW_BAND_NM_INV, max_peaks, min_ratio)


def matched_peaks(before: list[Peak], after: list[Peak]) -> list[tuple[Peak, Peak | None]]:
    """Each peak of `before` paired with the peak of `after` whose orientation is nearest."""
    if not after:
        return [(peak, None) for peak in before]
    return [
        (peak, min(after, key=lambda p, peak=peak: float(_turn(p.angle_deg, peak.angle_deg))))
        for peak in before
    ]


def resolvable(
    shape: tuple[int, int], pixel_size_nm: PixelSize
) -> tuple[np.ndarray | None, str | None]:
    """Where in the spectrum the dimer rows can be seen at this sampling, or why nowhere.

    Args:
        shape: (H, W) of the scan; pixel_size_nm: its pitch in nm, one number or (x, y).

    Returns:
        (allowed, None): allowed is None (everywhere) or, when the slow axis is too coarse for
            the rows (super-resolution inputs), an (H, W) bool mask of the orientations whose
            slow-axis frequency stays under 90 % of that axis's Nyquist limit.
        (None, reason): a sentence fragment saying why the rows cannot be checked at all.
    """
    px_x, px_y = _pitch(pixel_size_nm)
    h, w = shape
    k_max = ROW_K_NM_INV * (1.0 + ROW_TOLERANCE)
    nyquist_x, nyquist_y = 0.5 / px_x, 0.5 / px_y
    if nyquist_x < k_max:
        return None, (
            f"its {px_x:.3g} nm/px along the fast axis are too coarse to show the "
            f"{DIMER_ROW_PERIOD_NM} nm dimer rows the model was trained on (that needs under "
            f"{0.5 / k_max:.3g} nm/px)"
        )
    frame_nm = min(w * px_x, h * px_y)
    if frame_nm < MIN_FRAME_PERIODS * DIMER_ROW_PERIOD_NM:
        return None, (
            f"its {frame_nm:.3g} nm frame is too small to resolve the {DIMER_ROW_PERIOD_NM} nm "
            f"dimer rows (that needs {MIN_FRAME_PERIODS * DIMER_ROW_PERIOD_NM:.3g} nm)"
        )
    if nyquist_y >= k_max:
        return None, None
    ky = np.fft.fftfreq(h, px_y)[:, None]
    kx = np.fft.fftfreq(w, px_x)[None, :]
    return np.abs(ky) <= np.sin(np.radians(_cone_deg(px_y))) * np.hypot(ky, kx), None


def _cone_deg(px_y: float) -> float:
    """Largest angle from the fast axis at which a row wave vector keeps its slow-axis frequency
    under 90 % of the Nyquist limit of lines `px_y` nm apart."""
    k_max = ROW_K_NM_INV * (1.0 + ROW_TOLERANCE)
    return float(np.degrees(np.arcsin(min(1.0, 0.9 * 0.5 / px_y / k_max))))


@dataclass(frozen=True)
class InputLattice:
    """What the input's spectrum says about the dimer rows.

    Attributes:
        rows: the dimer-row peaks found (one per row orientation, at most two), strongest first.
        warning: why the input looks outside the training domain, or why it could not be
            checked (a sentence fragment); None when it shows the rows.
    """

    rows: list[Peak]
    warning: str | None


def check_input(heights: np.ndarray, pixel_size_nm: PixelSize) -> InputLattice:
    """Look for the Si(001):H dimer rows in a scan (one FFT).

    The most prominent lattice peaks (`MIN_PROMINENCE`) in `SEARCH_BAND_NM_INV` are found; the
    scan shows the rows when one lies within `ROW_TOLERANCE` of 1 / 0.77 nm and no other peak
    holding `OTHER_LATTICE_RATIO` of its power sits anywhere but 90 degrees away at the rows'
    period.

    Args:
        heights: (H, W) heights in any unit.
        pixel_size_nm: the scan's pixel pitch in nm, one number or (x, y).
    """
    allowed, reason = resolvable(heights.shape, pixel_size_nm)
    if reason is not None:
        return InputLattice([], f"lattice check skipped: {reason}")
    power, _ = power_spectrum(heights, pixel_size_nm)
    px_x, px_y = _pitch(pixel_size_nm)
    frame_nm = min(heights.shape[1] * px_x, heights.shape[0] * px_y)
    band = (max(SEARCH_BAND_NM_INV[0], 5.0 / frame_nm), SEARCH_BAND_NM_INV[1])
    found = [
        p
        for p in find_peaks(power, pixel_size_nm, band, 6, 0.0, allowed, by_prominence=True)
        if p.prominence >= MIN_PROMINENCE
    ]
    rows = [p for p in found if abs(p.k_nm_inv / ROW_K_NM_INV - 1.0) <= ROW_TOLERANCE]
    domain = "the result is outside the model's training domain"
    if not rows:
        if allowed is not None:
            # Aliases of rows at other orientations land anywhere: say only what was looked at.
            return InputLattice(
                [],
                f"no {DIMER_ROW_PERIOD_NM} nm Si(001):H dimer-row peak among the orientations its "
                f"{px_y:.3g} nm line spacing can show (wave vectors within "
                f"{_cone_deg(px_y):.0f} deg of the fast axis): either its rows run otherwise, or "
                f"{domain}",
            )
        if found:
            lattice = found[0]
            return InputLattice(
                [],
                f"its most prominent lattice repeats every {lattice.period_nm:.3g} nm (wave "
                f"vector at {lattice.angle_deg:.0f} deg), not the {DIMER_ROW_PERIOD_NM} nm "
                f"Si(001):H dimer rows the model was trained on (a wrong pixel size, or another "
                f"surface): {domain}",
            )
        return InputLattice(
            [],
            f"its spectrum shows no periodic lattice, so none of the {DIMER_ROW_PERIOD_NM} nm "
            f"Si(001):H dimer rows the model was trained on: {domain}",
        )
    first = max(rows, key=lambda p: p.power)
    if allowed is not None:
        return InputLattice([first], None)  # other peaks in the cone may be aliases
    second = []
    for p in sorted(found, key=lambda p: -p.power):
        if p is first or p.power < OTHER_LATTICE_RATIO * first.power:
            continue
        turn = float(_turn(p.angle_deg, first.angle_deg))
        if p in rows and turn >= 75.0:
            second.append(p)  # the rows of a terrace turned by 90 degrees
        elif 45.0 <= turn <= 75.0 and abs(p.k_nm_inv / first.k_nm_inv - 1.0) <= 0.25:
            return InputLattice(
                [],
                f"its lattice at {first.period_nm:.3g} nm is hexagonal (wave vectors "
                f"{turn:.0f} deg apart, like Si(111)), not the Si(001):H dimer rows the model "
                f"was trained on: {domain}",
            )
        else:
            return InputLattice(
                [],
                f"besides a {first.period_nm:.3g} nm lattice its spectrum holds another one, "
                f"{100 * p.power / first.power:.0f} % as strong, repeating every "
                f"{p.period_nm:.3g} nm at {turn:.0f} deg to it: not the "
                f"Si(001):H dimer rows alone that the model was trained on (another surface, "
                f"or a distorted scan), so {domain}",
            )
    return InputLattice([first, *second[:1]], None)


def compare_peaks(
    rows: list[Peak], input_pixels: int, output: np.ndarray, pixel_size_nm: PixelSize
) -> str | None:
    """A hallucination hint when the model moved or weakened the input's dimer-row peaks.

    Each input peak is paired with the output's strongest peak of the nearest orientation within
    twice `ROW_TOLERANCE` of the rows' frequency (one FFT of the output).

    Args:
        rows: the input's row peaks (`check_input`).
        input_pixels: the input's pixel count (powers are compared per pixel, so an SR output
            with k times the lines compares with its input).
        output: (H', W') the model's output over the same frame, same height unit.
        pixel_size_nm: its pixel pitch in nm, one number or (x, y).

    Returns:
        A sentence fragment, or None when every peak kept its frequency (within
        `MAX_PEAK_SHIFT`) and its power (at least `MIN_PEAK_POWER`).
    """
    if not rows:
        return None
    power, _ = power_spectrum(output, pixel_size_nm)
    band = (ROW_K_NM_INV * (1 - 2 * ROW_TOLERANCE), ROW_K_NM_INV * (1 + 2 * ROW_TOLERANCE))
    found = find_peaks(power, pixel_size_nm, band, 4, 0.0)
    hint = "check the result for invented or smoothed-away structure"
    for before, after in matched_peaks(rows, found):
        where = f"the {before.period_nm:.3g} nm dimer-row peak at {before.angle_deg:.0f} deg"
        if after is None:
            return f"the model lost {where}: {hint}"
        shift = abs(after.k_nm_inv - before.k_nm_inv) / before.k_nm_inv
        if shift > MAX_PEAK_SHIFT:
            return (
                f"the model moved {where} by {100 * shift:.0f} % in frequency (more than "
                f"{100 * MAX_PEAK_SHIFT:.0f} %): {hint}"
            )
        ratio = (after.power / output.size) / (before.power / input_pixels)
        if ratio < MIN_PEAK_POWER:
            return (
                f"the model kept only {100 * ratio:.0f} % of the power of {where} (less than "
                f"{100 * MIN_PEAK_POWER:.0f} %): {hint}"
            )
    return None
