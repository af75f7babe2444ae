"""Writing a result together with everything its source file held.

.sxm and .gwy results carry every channel and direction of the source file unchanged, plus the
restored image as a new channel named `<channel>_<label>` (e.g. "Z_restore_fm-small"; with several
samples also their per-pixel standard deviation, "Z_restore_fm-small_std"), or, with
`replace=True`, the restored image in place of the one it came from. Its processing history goes
into the file's metadata (.sxm: COMMENT and the "stm_zoo>history" tag; .gwy: the channel's meta).

- A .gwy source is copied object by object (fields, masks, graphs, logs), so nothing is lost;
  other sources are read with `load_all_scans` (a MATRIX data file brings its sibling channels).
- A restored image is put back on its source's pixel grid: an aborted scan, whose valid block of
  lines the engine restored, gets NaN lines where the source has them.
- An .sxm file holds one pixel grid. A super-resolved image (k times the lines) cannot share it
  with the measured channels, so it is written alone, with a warning: write .gwy, where every
  channel has its own resolution, to keep them together (the source file keeps them anyway).
- PNG, TIFF and .npy hold one image: the result alone, its std in `<name>_std.<ext>`.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from stm_zoo.io import gwy, sxm
from stm_zoo.io._common import file_error, reading
from stm_zoo.io.api import FORMAT_NAMES, detect_format, load_all_scans, save_scan
from stm_zoo.io.scan import KEPT_ROWS, SR_FRAME, Scan, longest_run, sr_input_frame
from stm_zoo.registry import is_learned

log = logging.getLogger(__name__)


def result_label(task: str, family: str, size: str) -> str:
    """The label of a model's results: "sr2_fm-small"; a family without a network has no size
    ("restore_classical")."""
    return f"{task}_{family}-{size}" if is_learned(family) else f"{task}_{family}"


def result_channel(channel: str, label: str) -> str:
    """The name of a restored channel, "Z_restore_fm-small" (no whitespace, as .sxm needs)."""
    return "_".join(f"{channel} {label}".split())


def save_result(
    restored: Scan,
    path: str | Path,
    *,
    label: str,
    source: str | Path | None = None,
    std: np.ndarray | None = None,
    replace: bool = False,
    scan_size_nm: float | Sequence[float] | None = None,
) -> list[Path]:
    """Write a restored scan with every channel of its source file (see the module docstring).

    Args:
        restored: the result, channel and direction those of the image it came from.
        path: the file to write; its extension picks the format.
        label: what made it, e.g. `result_label("restore", "fm", "small")`; names new channels.
        source: the file `restored` came from (default `restored.source`); None or a missing
            file writes the result alone.
        std: (H, W) per-pixel standard deviation over samples, in the result's unit.
        replace: put the result in place of its source image instead of adding a channel.
        scan_size_nm: the width given when the source was read (files without a physical size).

    Returns:
        The written files: `path`, then the std file for single-image formats.

    Raises:
        STMFileError: the source cannot be read, or its channels cannot share one .sxm grid.
    """
    path = Path(path)
    fmt = detect_format(path)
    new_name = result_channel(restored.channel, label)
    std_scan = None
    if std is not None:
        std_scan = restored.replace(data=std, channel=f"{new_name}_std")
    if fmt not in ("sxm", "gwy"):
        written = [save_scan(restored, path)]
        if std_scan is not None:
            written.append(save_scan(std_scan, path.with_name(f"{path.stem}_std{path.suffix}")))
        return written

    source = Path(source) if source is not None else restored.source
    result = restored if replace else restored.replace(channel=new_name)
    extras = [std_scan] if std_scan is not None else []
    if source is None or not source.is_file():
        save_scan([result, *extras], path)
        return [path]
    originals = load_all_scans(source, scan_size_nm)
    # A size-less SR input's frame as `restore` read it, so that input and result agree.
    stretch = restored.metadata.get(SR_FRAME, 1)
    originals = [sr_input_frame(o, stretch) for o in originals]
    origin = _origin(restored, originals)
    if origin is not None:
        result, extras = _on_grid(result, origin), [_on_grid(s, origin) for s in extras]
    on_grid = origin is not None and result.shape == origin.shape
    replaced = origin is not None and replace

    if fmt == "sxm" and not on_grid:
        log.warning(
            "%s: an .sxm file holds one pixel grid, so the %d-line result is written without the "
            "%d-line channels of %s; write .gwy to keep them together",
            path.name,
            result.shape[0],
            originals[0].shape[0],
            source.name,
        )
        save_scan([result, *extras], path)
        return [path]
    if fmt == "gwy" and detect_format(source) == "gwy":
        with reading(path, FORMAT_NAMES["gwy"]):
            if replaced:
                field = int(origin.metadata["field"])
                gwy.write_into(source, path, extras, {field: result})
            else:
                gwy.write_into(source, path, [result, *extras])
        return [path]

    if replaced:
        scans = [result if s is origin else s for s in originals] + extras
    else:
        scans = [*originals, result, *extras]
    with reading(path, FORMAT_NAMES[fmt]):
        if fmt == "gwy":
            gwy.write(scans, path, shown=next(i for i, s in enumerate(scans) if s is result))
        else:
            _check_one_grid(scans, source, path)
            sxm.write(scans, path)
    return [path]


def _origin(restored: Scan, originals: Sequence[Scan]) -> Scan | None:
    """The source image `restored` was made from: same channel, direction and slow direction
    (for .gwy the same data field)."""
    field = restored.metadata.get("field")
    for scan in originals:
        if field is not None and scan.metadata.get("field") != field:
            continue
        if (scan.channel, scan.direction, scan.scan_dir) == (
            restored.channel,
            restored.direction,
            restored.scan_dir,
        ):
            return scan
    return None if len(originals) != 1 else originals[0]


def _on_grid(scan: Scan, origin: Scan) -> Scan:
    """`scan` on the pixel grid of `origin`: the same when it fits; NaN lines around it where
    the engine restored only part of the lines of an aborted scan (the rows it kept are in
    `metadata[KEPT_ROWS]`); otherwise (super-resolved, k times the lines) unchanged."""
    if scan.shape == origin.shape:
        return scan.replace(scan_size_m=origin.scan_size_m)
    h, w = origin.shape
    kept = scan.metadata.get(KEPT_ROWS)
    valid = origin.valid_rows()
    if kept is not None and kept[2] == h:
        start, stop = int(kept[0]), int(kept[1])
    elif valid.any():
        start, stop = longest_run(valid)
    else:
        return scan
    if scan.shape != (stop - start, w):
        return scan
    data = np.full(origin.shape, np.nan, dtype=np.float32)
    data[start:stop] = scan.data
    return scan.replace(data=data, scan_size_m=origin.scan_size_m)


def _check_one_grid(scans: Sequence[Scan], source: Path, path: Path) -> None:
    first = scans[0]
    for scan in scans:
        same = (scan.shape, scan.scan_size_m, scan.scan_dir or "down") == (
            first.shape,
            first.scan_size_m,
            first.scan_dir or "down",
        )
        if not same:
            raise file_error(
                path,
                f"an .sxm file holds one pixel grid and slow-scan direction, but the channels of "
                f"{source.name} differ in them; write .gwy instead to keep them all",
            )
