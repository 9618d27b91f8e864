"""Loading cobra models: COBRApy's bundled models by name, or a user's SBML/JSON/MAT file.

Nothing is downloaded: names resolve to files shipped inside COBRApy (``cobra/data``).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # cobra is imported lazily: `import mpc_bio` and pFBA workers stay light
    import cobra

__all__ = ["BUNDLED_MODELS", "ModelLoadError", "load_model", "model_hash", "find_ich360"]


class ModelLoadError(ValueError):
    """A model name is unknown or a model file cannot be read."""


def _cobra_data_dir() -> Path:
    import cobra.data

    return Path(cobra.data.__file__).parent


#: Bundled model names -> file name inside ``cobra/data``. ``textbook`` is an alias of ``e_coli_core``.
BUNDLED_MODELS: dict[str, str] = {
    "e_coli_core": "textbook.xml.gz",
    "textbook": "textbook.xml.gz",
    "iJO1366": "iJO1366.xml.gz",
    "salmonella": "salmonella.xml.gz",
}

#: Model file extension -> name of the COBRApy reader in ``cobra.io``.
_READERS = {
    ".xml": "read_sbml_model",
    ".sbml": "read_sbml_model",
    ".json": "load_json_model",
    ".mat": "load_matlab_model",
    ".yml": "load_yaml_model",
    ".yaml": "load_yaml_model",
}


def _suffix(path: Path) -> str:
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] in (".gz", ".bz2", ".zip"):
        suffixes = suffixes[:-1]
    return suffixes[-1] if suffixes else ""


def load_model(name_or_path: str | Path) -> cobra.Model:
    """Load a cobra model by bundled name or from a file.

    Parameters
    ----------
    name_or_path
        One of :data:`BUNDLED_MODELS` (``"e_coli_core"`` is the default model of the toolkit,
        ``"iJO1366"`` the genome-scale case), or a path to an SBML (``.xml``, ``.xml.gz``,
        ``.sbml``), JSON, MAT or YAML model file.

    Returns
    -------
    cobra.Model
        A fresh model object; callers may modify it freely.

    Raises
    ------
    ModelLoadError
        If the name is not bundled and no such file exists, or the file cannot be parsed.
    """
    import cobra

    if isinstance(name_or_path, cobra.Model):
        return name_or_path.copy()
    key = str(name_or_path)
    if key in BUNDLED_MODELS:
        path = _cobra_data_dir() / BUNDLED_MODELS[key]
    else:
        path = Path(key).expanduser()
        if not path.exists():
            raise ModelLoadError(
                f"The model {key!r} is neither a bundled model nor an existing file. "
                f"Bundled models: {sorted(BUNDLED_MODELS)}; or give a path to an SBML "
                f"(.xml, .xml.gz), JSON or MAT file."
            )
    suffix = _suffix(path)
    reader = _READERS.get(suffix)
    if reader is None:
        raise ModelLoadError(
            f"The model file {str(path)!r} has the extension {suffix!r}; expected one of "
            f"{sorted(_READERS)} (optionally gzipped)."
        )
    try:
        model = getattr(cobra.io, reader)(str(path))
    except Exception as exc:  # cobra raises many types for unreadable files
        raise ModelLoadError(f"Could not read the model file {str(path)!r}: {exc}") from exc
    if key == "textbook":
        model.id = "e_coli_core"
    return model


def model_hash(model: cobra.Model) -> str:
    """SHA-256 over the model's stoichiometry, bounds and objective (16 hex characters).

    Two models with the same reactions, metabolites, coefficients, bounds and objective have
    the same hash, whatever file they were read from.
    """
    from cobra.util.solver import linear_reaction_coefficients

    # one pass over the objective (reaction.objective_coefficient re-reads it for every reaction)
    coefficients = {r.id: c for r, c in linear_reaction_coefficients(model).items()}
    payload = {
        "reactions": [
            (
                r.id,
                float(r.lower_bound),
                float(r.upper_bound),
                float(coefficients.get(r.id, 0.0)),
                sorted((m.id, float(c)) for m, c in r.metabolites.items()),
            )
            for r in model.reactions
        ],
        "metabolites": [m.id for m in model.metabolites],
    }
    blob = json.dumps(payload, sort_keys=True, default=lambda x: float(np.asarray(x))).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def find_ich360(root: str | Path | None = None) -> Path | None:
    """Path of the iCH360 JSON model in the shared reference data, or ``None`` if absent.

    Looks in ``$MPC_BIO_ICH360`` (a file or its folder) first, then in
    ``<root>/../shared/data/iCH360/`` where ``root`` defaults to the repository checkout.
    iCH360 is not shipped with mpc_bio: get it from the iCH360 repository (Corrao et al. 2025).
    """
    import os

    candidates: list[Path] = []
    env = os.environ.get("MPC_BIO_ICH360")
    if env:
        p = Path(env)
        candidates.append(p if p.suffix else p / "Escherichia_coli_iCH360.json")
    base = Path(root) if root is not None else Path(__file__).resolve().parents[2]
    candidates.append(base.parent / "shared" / "data" / "iCH360" / "Escherichia_coli_iCH360.json")
    for c in candidates:
        if c.is_file():
            return c
    return None
