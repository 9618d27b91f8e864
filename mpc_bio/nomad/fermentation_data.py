"""Batch fermentation data of the strains an ensemble models (NOMAD screening stage iii).

A CSV file, one measurement per row; lines starting with ``#`` are comments::

    strain,quantity,time_h,value,unit,source
    trpD9923,product,final,0.31,g/L,"where the number comes from"
    trpD9923,glucose,0,20,mM,...

- ``quantity``: ``biomass`` (gDW/L), ``glucose`` (mM or g/L) or ``product`` (mM or g/L; g/L is
  converted with the product's molar mass when read through :meth:`FermentationData.value`).
- ``time_h``: hours since inoculation, or ``final`` for the end of the fermentation (the value
  :meth:`FermentationData.final` returns; without a ``final`` row, the latest time).
- ``source``: free text (may be empty); the shipped file names the paper, section and figure.

Screening stage (iii) reads the reference strain's values at time 0 (inoculum, glucose) and its
final values (biomass, product), as the paper's criteria do; other time points are kept but not
used by the screen.

The shipped default (:data:`DEFAULT_FERMENTATION_DATA`) holds what the NOMAD paper states for
E. coli W3110 trpD9923 and its aroG^fbr and aroG^fbr+tktA strains (the three final titers).
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from mpc_bio.nomad.settings import NomadSettingsError

__all__ = [
    "DEFAULT_FERMENTATION_DATA",
    "FermentationDataError",
    "FermentationData",
    "Measurement",
    "load_fermentation_data",
]

#: The fermentation data shipped with mpc_bio (package data).
DEFAULT_FERMENTATION_DATA = "data/nomad/trpD9923_batch.csv"

GLUCOSE_MOLAR_MASS = 180.156  # g/mol
COLUMNS = ("strain", "quantity", "time_h", "value", "unit", "source")
UNITS = {"biomass": ("gDW/L",), "glucose": ("mM", "g/L"), "product": ("mM", "g/L")}


class FermentationDataError(NomadSettingsError):
    """A fermentation data file is missing or malformed (the message names the file, row and column)."""


@dataclass(frozen=True)
class Measurement:
    """One row of a fermentation data file.

    Attributes
    ----------
    strain, quantity : str
    time : float or None
        h since inoculation; None for the ``final`` value.
    value : float
        In ``unit``.
    unit : str
    source : str
    row : int
        Line number in the file (1 = first line).
    """

    strain: str
    quantity: str
    time: float | None
    value: float
    unit: str
    source: str
    row: int


@dataclass(frozen=True)
class FermentationData:
    """The measurements of one file.

    Attributes
    ----------
    path : str
    measurements : tuple of Measurement
    """

    path: str
    measurements: tuple[Measurement, ...]

    @property
    def strains(self) -> tuple[str, ...]:
        """Strains in file order."""
        return tuple(dict.fromkeys(m.strain for m in self.measurements))

    def _rows(self, strain: str, quantity: str) -> list[Measurement]:
        if strain not in self.strains:
            raise FermentationDataError(f"The fermentation data {self.path!r} hold no strain {strain!r}; strains: {list(self.strains)}.")
        return [m for m in self.measurements if m.strain == strain and m.quantity == quantity]

    def final(self, strain: str, quantity: str) -> Measurement | None:
        """The ``final`` row of ``strain``'s ``quantity`` (else its latest time point), None without any."""
        rows = self._rows(strain, quantity)
        fin = [m for m in rows if m.time is None]
        if fin:
            return fin[0]
        return max(rows, key=lambda m: m.time) if rows else None

    def initial(self, strain: str, quantity: str) -> Measurement | None:
        """The row of ``strain``'s ``quantity`` at time 0, None without one."""
        rows = [m for m in self._rows(strain, quantity) if m.time == 0.0]
        return rows[0] if rows else None

    @staticmethod
    def value(m: Measurement | None, molar_mass: float | None = None) -> float | None:
        """``m``'s value in the units the reactor uses (biomass gDW/L, glucose and product mM); None passes through.

        Parameters
        ----------
        m : Measurement or None
        molar_mass : float, optional
            g/mol of the product, needed for a product given in g/L.
        """
        if m is None:
            return None
        if m.unit != "g/L" or m.quantity == "biomass":
            return m.value
        mw = GLUCOSE_MOLAR_MASS if m.quantity == "glucose" else molar_mass
        if mw is None:
            raise FermentationDataError(f"Row {m.row} gives the product in g/L; a molar mass (g/mol) is needed to convert it to mM.")
        return m.value / mw * 1000.0


def _resolve(path: str | Path | None) -> Path:
    if path is None:
        return Path(str(resources.files("mpc_bio").joinpath(DEFAULT_FERMENTATION_DATA)))
    return Path(path)


def load_fermentation_data(path: str | Path | None = None) -> FermentationData:
    """Read a fermentation data CSV (default: the file shipped with mpc_bio).

    Parameters
    ----------
    path : str or Path, optional
        The file; a relative path is taken from the working directory (a scenario file's
        ``fermentation_data`` is made absolute relative to the scenario file when the file is read,
        :func:`mpc_bio.nomad.settings.load_study_settings`).

    Raises
    ------
    FermentationDataError
        If the file is missing, lacks a column, or a row has an unknown quantity or unit, a time
        that is neither a number >= 0 nor ``final``, a value that is not a finite number >= 0, or
        repeats a (strain, quantity, time); the message names the file, the row and the column.
    """
    p = _resolve(path)
    if not p.is_file():
        raise FermentationDataError(f"The fermentation data file {str(p)!r} does not exist.")
    lines = p.read_text(encoding="utf-8").splitlines()
    numbered = [(k + 1, line) for k, line in enumerate(lines) if line.strip() and not line.lstrip().startswith("#")]
    if not numbered:
        raise FermentationDataError(f"The fermentation data file {str(p)!r} has no header row (expected columns {list(COLUMNS)}).")
    reader = csv.reader([line for _, line in numbered])
    rows = list(reader)
    header = [h.strip() for h in rows[0]]
    missing = [c for c in COLUMNS if c not in header and c != "source"]
    if missing:
        raise FermentationDataError(
            f"{str(p)!r}, row {numbered[0][0]} (header): missing column(s) {missing}; expected {list(COLUMNS)}, got {header}."
        )
    col = {c: header.index(c) for c in COLUMNS if c in header}
    out: list[Measurement] = []
    seen: dict[tuple, int] = {}
    for (row_no, _), cells in zip(numbered[1:], rows[1:]):

        def bad(column: str, expected: str, got) -> FermentationDataError:
            return FermentationDataError(f"{str(p)!r}, row {row_no}, column {column!r}: expected {expected}, got {got!r}.")

        if len(cells) < len(header):
            raise bad(header[len(cells)], f"{len(header)} cells per row ({', '.join(header)})", ",".join(cells))
        get = {c: cells[i].strip() for c, i in col.items()}
        if not get["strain"]:
            raise bad("strain", "a strain name", get["strain"])
        q = get["quantity"]
        if q not in UNITS:
            raise bad("quantity", f"one of {list(UNITS)}", q)
        if get["unit"] not in UNITS[q]:
            raise bad("unit", f"one of {list(UNITS[q])} for {q}", get["unit"])
        t_raw = get["time_h"]
        if t_raw.lower() == "final":
            t = None
        else:
            try:
                t = float(t_raw)
            except ValueError:
                raise bad("time_h", 'a time in h (a number >= 0) or "final"', t_raw) from None
            if not math.isfinite(t) or t < 0:
                raise bad("time_h", 'a time in h (a number >= 0) or "final"', t_raw)
        try:
            v = float(get["value"])
        except ValueError:
            raise bad("value", "a number >= 0", get["value"]) from None
        if not math.isfinite(v) or v < 0:
            raise bad("value", "a finite number >= 0", get["value"])
        key = (get["strain"], q, t)
        if key in seen:
            raise bad(
                "time_h", f"one row per (strain, quantity, time); row {seen[key]} already gives {q} of {get['strain']} at this time", t_raw
            )
        seen[key] = row_no
        out.append(Measurement(get["strain"], q, t, v, get["unit"], get.get("source", ""), row_no))
    if not out:
        raise FermentationDataError(f"The fermentation data file {str(p)!r} has a header but no measurements.")
    return FermentationData(str(p), tuple(out))
