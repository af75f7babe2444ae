"""Previews for the web app: uint8 RGB images of scan data, for display only.

Heights (and unitless image codes) have their least-squares plane removed, as a user does in
Gwyddion; other channels (current, ...) are shown as measured. Values are mapped through a robust
(0.5-99.5 percentile) range to a colour map (grey, or Gwyddion's "Gold"), the image is drawn at
its physical aspect ratio, a scale bar labelled in nm is burnt in and a colour bar in physical
units (pm or nm by range, pA or nA for current, plain numbers without a unit) is appended on the
right. 8-bit previews are not data: the app hands data out only as full-precision files
(`webapp.restoring.write_downloads`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from stm_zoo.errors import StmZooError
from stm_zoo.io.cli_info import si_scale
from stm_zoo.io.scan import Scan

# Units whose images are levelled for display: heights, and image codes (usually heights).
LEVELLED_UNITS = ("m", "")

COLOUR_MAPS = ("gold", "grey")
# Gwyddion's "Gold" gradient (data/gradients/Gold in Gwyddion's sources): position, R, G, B.
_GOLD_STOPS = (
    (0.0, 0.0, 0.0, 0.0),
    (1 / 3, 0.345098, 0.109804, 0.0),
    (2 / 3, 0.737255, 0.501961, 0.0),
    (1.0, 0.988235, 0.988235, 0.501961),
)
# A perceptually ordered dark-to-bright map for uncertainty, distinct from the height maps.
_UNCERTAINTY_STOPS = (
    (0.0, 0.0, 0.0, 0.015),
    (0.25, 0.23, 0.06, 0.43),
    (0.5, 0.58, 0.15, 0.40),
    (0.75, 0.93, 0.41, 0.14),
    (1.0, 0.99, 0.99, 0.75),
)


def colour_table(name: str) -> np.ndarray:
    """(256, 3) uint8 lookup table: "grey", "gold" (Gwyddion's Gold) or "uncertainty"."""
    stops = {
        "grey": ((0.0, 0.0, 0.0, 0.0), (1.0, 1.0, 1.0, 1.0)),
        "gold": _GOLD_STOPS,
        "uncertainty": _UNCERTAINTY_STOPS,
    }.get(name)
    if stops is None:
        raise StmZooError(f"Unknown colour map {name!r}: choose {' or '.join(COLOUR_MAPS)}.")
    x = np.linspace(0.0, 1.0, 256)
    positions = [s[0] for s in stops]
    channels = [np.interp(x, positions, [s[c] for s in stops]) for c in (1, 2, 3)]
    return np.round(np.stack(channels, axis=1) * 255).astype(np.uint8)


def remove_plane(data: np.ndarray) -> np.ndarray:
    """`data` (H, W) minus its least-squares plane over the finite pixels (display levelling)."""
    h, w = data.shape
    finite = np.isfinite(data)
    if finite.sum() < 3:
        return data.astype(np.float64)
    yy, xx = np.mgrid[0:h, 0:w]
    design = np.stack([np.ones(finite.sum()), yy[finite], xx[finite]], axis=1).astype(np.float64)
    coef, *_ = np.linalg.lstsq(design, data[finite].astype(np.float64), rcond=None)
    return data - (coef[0] + coef[1] * yy + coef[2] * xx)


def robust_range(data: np.ndarray, low: float = 0.5, high: float = 99.5) -> tuple[float, float]:
    """(lo, hi) percentiles of the finite values; (0, 1) when there are none."""
    finite = data[np.isfinite(data)]
    if finite.size == 0:
        return 0.0, 1.0
    lo, hi = np.percentile(finite, [low, high])
    if hi <= lo:
        hi = lo + max(abs(lo) * 1e-6, 1e-30)
    return float(lo), float(hi)


def display_size(
    scan_size_m: tuple[float, float], shape: tuple[int, int], min_width: int = 512
) -> tuple[int, int]:
    """(height, width) in screen pixels at the scan's physical aspect ratio.

    Images narrower than `min_width` are enlarged (nearest neighbour, so pixels stay visible);
    wide ones keep their width up to 1024 px.
    """
    width = int(np.clip(shape[1], min_width, 1024))
    height = int(round(width * scan_size_m[1] / scan_size_m[0]))
    return max(1, min(height, 2048)), width


def nice_length(target: float) -> float:
    """The largest of 1, 2 or 5 x 10^n not above `target` (> 0)."""
    exponent = math.floor(math.log10(target))
    for mantissa in (5.0, 2.0, 1.0):
        value = mantissa * 10.0**exponent
        if value <= target:
            return value
    return 10.0**exponent


def format_length_nm(length_nm: float) -> str:
    """ "20 nm", "0.5 nm", "1.5 µm"."""
    if length_nm >= 1000:
        return f"{length_nm / 1000:g} µm"
    return f"{length_nm:g} nm"


def font(size_px: int) -> Any:
    """DejaVu Sans (shipped with matplotlib; it has µ and the minus sign) at `size_px` pixels."""
    from PIL import ImageFont

    try:
        import matplotlib

        return ImageFont.truetype(f"{matplotlib.get_data_path()}/fonts/ttf/DejaVuSans.ttf", size_px)
    except (ImportError, OSError):  # Pillow's own font lacks µ and the minus sign
        return ImageFont.load_default(size=size_px)


def display_unit(span: float, unit: str) -> tuple[float, str]:
    """(factor, label) to show values spanning `span` SI units: value / factor in `label`.

    An SI prefix is chosen so the span reads between 1 and 1000 ((1e-12, "pm") for 300 pm,
    (1e-9, "nm") for 2 nm, (1e-12, "pA") for 40 pA); units without prefixes and unitless data
    (unit "") are shown as they are, (1.0, unit).
    """
    return si_scale(span, unit) if span > 0 else (1.0, unit)


def format_number(value: float) -> str:
    """A tick value as a microscopist writes it: "-250", "0.5", "1200" (a true minus sign)."""
    text = f"{round(value, 9):g}"
    return "0" if text == "-0" else text.replace("-", "\u2212")


def colour_bar_ticks(
    value_range: tuple[float, float], unit: str, max_ticks: int = 6
) -> list[tuple[float, str]]:
    """Round tick values inside `value_range` (SI units) with labels such as "-250 pm".

    Returns:
        (value in SI units, label) pairs from low to high; the prefix follows `display_unit`
        of the range's span, unitless data gets plain numbers.
    """
    from matplotlib.ticker import MaxNLocator

    lo, hi = value_range
    factor, label = display_unit(hi - lo, unit)
    locator = MaxNLocator(nbins=max(1, max_ticks - 1), steps=[1, 2, 2.5, 5, 10])
    slack = (hi - lo) / factor * 1e-9
    ticks = [
        t
        for t in locator.tick_values(lo / factor, hi / factor)
        if lo / factor - slack <= t <= hi / factor + slack
    ]
    return [(t * factor, f"{format_number(t)} {label}".rstrip()) for t in ticks]


def draw_colour_bar(
    rgb: np.ndarray, table: np.ndarray, value_range: tuple[float, float], unit: str
) -> np.ndarray:
    """Append a white strip on the right holding a colour bar with ticks in physical units.

    Args:
        rgb: (H, W, 3) uint8 image whose colours map `value_range` (SI units) through `table`.
        table: (256, 3) uint8 colour table, `colour_table`.
        unit: SI unit of the values ("m", "A", ...; "" for plain numbers).

    Returns:
        (H, W + strip, 3) uint8; the strip's width depends only on the image width and the
        labels, so images sharing a range and a unit come out the same size.
    """
    from PIL import Image, ImageDraw

    h, w = rgb.shape[:2]
    font_px = max(14, w // 22)
    label_font = font(font_px)
    gap = max(6, font_px // 2)
    bar_w = max(12, w // 32)
    tick_len = max(4, bar_w // 3)
    top, bottom = font_px // 2 + 4, h - font_px // 2 - 5
    max_ticks = int(np.clip((bottom - top) // (2.5 * font_px), 2, 7))
    ticks = colour_bar_ticks(value_range, unit, max_ticks)
    # Room for at least "-888 pm" so that small changes of range do not shift the layout.
    label_w = max(
        label_font.getlength(text) for text in [f"\u2212888 p{unit}", *(t for _, t in ticks)]
    )
    strip_w = int(np.ceil(gap + bar_w + tick_len + gap + label_w + gap))
    strip = Image.new("RGB", (strip_w, h), (255, 255, 255))
    draw = ImageDraw.Draw(strip)
    x0, x1 = gap, gap + bar_w
    # Top of the bar is the high end of the range.
    fractions = np.linspace(1.0, 0.0, max(bottom - top, 1))
    colours = table[np.round(fractions * 255).astype(int)]
    gradient = np.repeat(colours[:, None, :], bar_w, axis=1).astype(np.uint8)
    strip.paste(Image.fromarray(gradient), (x0, top))
    draw.rectangle((x0 - 1, top - 1, x1, bottom), outline=(0, 0, 0))
    lo, hi = value_range
    for value, text in ticks:
        y = bottom - (value - lo) / (hi - lo) * (bottom - top)
        draw.line((x1, y, x1 + tick_len, y), fill=(0, 0, 0), width=1)
        draw.text((x1 + tick_len + gap, y), text, fill=(0, 0, 0), font=label_font, anchor="lm")
    return np.concatenate([rgb, np.asarray(strip)], axis=1)


def draw_scale_bar(rgb: np.ndarray, width_nm: float) -> np.ndarray:
    """Burn a labelled scale bar (about a fifth of the width) into the bottom-left corner.

    Args:
        rgb: (H, W, 3) uint8 image showing a frame `width_nm` wide.

    Returns:
        A new (H, W, 3) uint8 image.
    """
    from PIL import Image, ImageDraw

    h, w = rgb.shape[:2]
    length_nm = nice_length(width_nm / 5)
    bar_px = max(2, int(round(length_nm / width_nm * w)))
    margin = max(6, w // 32)
    thickness = max(3, w // 110)
    font_px = max(12, w // 20)
    image = Image.fromarray(rgb)
    draw = ImageDraw.Draw(image)
    x0, y1 = margin, h - margin
    y0 = y1 - thickness
    outline = max(1, thickness // 3)
    draw.rectangle(
        (x0 - outline, y0 - outline, x0 + bar_px + outline, y1 + outline), fill=(0, 0, 0)
    )
    draw.rectangle((x0, y0, x0 + bar_px, y1), fill=(255, 255, 255))
    label = format_length_nm(length_nm)
    draw.text(
        (x0 + bar_px / 2, y0 - outline - 2),
        label,
        fill=(255, 255, 255),
        font=font(font_px),
        anchor="mb",
        stroke_width=max(1, font_px // 8),
        stroke_fill=(0, 0, 0),
    )
    return np.asarray(image)


def render(
    data: np.ndarray,
    scan_size_m: tuple[float, float],
    colour_map: str = "gold",
    size: tuple[int, int] | None = None,
    value_range: tuple[float, float] | None = None,
    level: bool = True,
    scale_bar: bool = True,
    colour_bar_unit: str | None = None,
) -> np.ndarray:
    """An 8-bit preview of a height image, for display only.

    Args:
        data: (H, W) heights (any unit); NaN pixels are drawn black.
        scan_size_m: (width, height) of the frame in metres, for the aspect ratio and the bar.
        colour_map: "gold", "grey" or "uncertainty".
        size: (height, width) on screen; default `display_size`.
        value_range: (lo, hi) mapped to the ends of the colour map; default the 0.5-99.5
            percentiles after levelling.
        level: remove the least-squares plane first (as a user does in Gwyddion).
        scale_bar: burn in a scale bar labelled in nm.
        colour_bar_unit: SI unit of `data` ("m", "A", "" for plain numbers): append a colour
            bar labelled in it; None: no colour bar.

    Returns:
        (height, width, 3) uint8 RGB; wider by the colour bar's strip when there is one.
    """
    from PIL import Image

    table = colour_table(colour_map)
    values = remove_plane(data) if level else data.astype(np.float64)
    lo, hi = value_range if value_range is not None else robust_range(values)
    scaled = (values - lo) / max(hi - lo, 1e-300)
    index = np.nan_to_num(np.clip(scaled, 0.0, 1.0) * 255.0, nan=0.0).astype(np.uint8)
    out_h, out_w = size or display_size(scan_size_m, data.shape)
    # Enlarge with nearest neighbour (a line of a low-resolution scan stays one visible band),
    # shrink with a box filter (averages instead of dropping lines).
    enlarging = out_h >= data.shape[0] and out_w >= data.shape[1]
    resample = Image.Resampling.NEAREST if enlarging else Image.Resampling.BOX
    resized = np.asarray(Image.fromarray(index).resize((out_w, out_h), resample))
    rgb = table[resized]
    if scale_bar:
        rgb = draw_scale_bar(rgb, scan_size_m[0] * 1e9)
    if colour_bar_unit is not None:
        rgb = draw_colour_bar(rgb, table, (lo, hi), colour_bar_unit)
    return rgb


def render_normalised(image: np.ndarray, frame_nm: float, colour_map: str = "gold") -> np.ndarray:
    """Preview of a square pipeline image in [-1, 1] (no levelling) spanning `frame_nm`."""
    size_m = (frame_nm * 1e-9, frame_nm * 1e-9)
    return render(image, size_m, colour_map, value_range=(-1.0, 1.0), level=False)


def display_values(scan: Scan) -> np.ndarray:
    """(H, W) float64 values as the previews show them: heights levelled, other channels as is."""
    if scan.unit in LEVELLED_UNITS:
        return remove_plane(scan.data)
    return scan.data.astype(np.float64)


@dataclass
class Views:
    """The images the Restore tab shows, uint8 RGB at the same on-screen size.

    Attributes:
        before: the input; after: the result; uncertainty: the std map (None with one sample).
        value_range: (lo, hi) in SI units that the colours of `before` and `after` span.
    """

    before: np.ndarray
    after: np.ndarray | None
    uncertainty: np.ndarray | None
    value_range: tuple[float, float]


def render_views(
    scan: Scan, result: Scan | None = None, std: np.ndarray | None = None, colour_map: str = "gold"
) -> Views:
    """Previews of an input, its result and the uncertainty, each with a colour bar.

    Drawn at one size so that a before/after slider lines them up (an SR input with H lines is
    stretched over the frame). Input and result share one colour range, the 0.5-99.5
    percentiles of both together, so that one colour means one height in both; the
    uncertainty map has its own bar from zero.
    """
    shown = result if result is not None else scan
    size = display_size(shown.scan_size_m, shown.shape)
    images = [display_values(scan)] + ([] if result is None else [display_values(result)])
    value_range = robust_range(np.concatenate([v.ravel() for v in images]))

    def draw(values: np.ndarray, source: Scan) -> np.ndarray:
        return render(
            values, source.scan_size_m, colour_map, size, value_range, False, True, source.unit
        )

    before = draw(images[0], scan)
    if result is None:
        return Views(before, None, None, value_range)
    after = draw(images[1], result)
    uncertainty = None
    if std is not None:
        hi = robust_range(std, 0.0, 99.5)[1]
        uncertainty = render(
            std, result.scan_size_m, "uncertainty", size, (0.0, hi), False, True, result.unit
        )
    return Views(before, after, uncertainty, value_range)
