"""The evaluation's result tables: one `Table` record written as markdown (rounded like the paper)
and CSV (full precision), and JSON that any parser reads."""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from stm_zoo.timing import markdown_table

Cell = str | float | int | None


@dataclass
class Table:
    """A table for markdown and CSV.

    Attributes:
        name: file stem of the CSV (e.g. "table_IX_restore").
        title: one line above the markdown table.
        columns: header cells.
        rows: one list of cells per row (floats are formatted by `formats`).
        formats: per column a format spec for floats (e.g. ".2f"), "" for the default.
        notes: lines printed under the markdown table.
    """

    name: str
    title: str
    columns: list[str]
    rows: list[list[Cell]] = field(default_factory=list)
    formats: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def _cell(self, value: Cell, column: int) -> str:
        if value is None:
            return ""
        if isinstance(value, float):
            if math.isnan(value):
                return "n/a"
            spec = self.formats[column] if column < len(self.formats) else ""
            return format(value, spec or ".4g")
        return str(value)

    def markdown(self) -> str:
        cells = [[self._cell(v, i) for i, v in enumerate(row)] for row in self.rows]
        lines = [f"**{self.title}**", "", markdown_table(self.columns, cells)]
        if self.notes:
            lines.append("")
            lines.extend(f"{note}  " for note in self.notes)
        return "\n".join(lines)

    def csv(self) -> str:
        """CSV with full-precision numbers (markdown rounds, CSV does not)."""
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(self.columns)
        for row in self.rows:
            writer.writerow(
                ["" if v is None else repr(v) if isinstance(v, float) else v for v in row]
            )
        return buffer.getvalue()


def write_tables(out_dir: Path, stem: str, heading: str, tables: Sequence[Table]) -> Path:
    """Write `<stem>.md` (every table) and one `<table.name>.csv` per table into `out_dir`."""
    out_dir.mkdir(parents=True, exist_ok=True)
    parts = [f"# {heading}", ""] + [t.markdown() + "\n" for t in tables]
    path = out_dir / f"{stem}.md"
    path.write_text("\n".join(parts), encoding="utf-8")
    for table in tables:
        (out_dir / f"{table.name}.csv").write_text(table.csv(), encoding="utf-8")
    return path


def write_json(path: Path, data: dict[str, Any]) -> Path:
    """JSON with non-finite floats written as strings ("inf", "nan") so any parser reads it."""

    def clean(obj: Any) -> Any:
        if isinstance(obj, dict):
            return {str(k): clean(v) for k, v in obj.items()}
        if isinstance(obj, list | tuple):
            return [clean(v) for v in obj]
        if isinstance(obj, np.ndarray):
            return clean(obj.tolist())
        if isinstance(obj, np.generic):
            obj = obj.item()
        if isinstance(obj, float) and not math.isfinite(obj):
            return str(obj)
        return obj

    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(clean(data), indent=1) + "\n", encoding="utf-8")
    return path
