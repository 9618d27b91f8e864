"""Loading cobra models: shipped models by name, or a user's SBML/JSON/MAT file.

Nothing is downloaded: names resolve to files shipped inside COBRApy (``cobra/data``) or inside
this package (``mpc_bio/data/models``: iCH360, Corrao et al. 2025, MIT licence).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from typing import TYPE_CHECKING

from mpc_bio.errors import MpcBioError

if TYPE_CHECKING:  # cobra is imported lazily: `import mpc_bio` and pFBA workers stay light
    import cobra

__all__ = [
    "BUNDLED_MODELS",
    "ICH360_DIR",
    "ModelLoadError",
    "load_model",
    "model_hash",
    "find_ich360",
    "ich360_gibbs_energy_files",
]


class ModelLoadError(MpcBioError):
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

#: Folder of the shipped iCH360 model: the COBRApy JSON model, its MIT ``LICENSE``, ``CITATION.md``
#: and the component-contribution estimates of the reactions' standard Gibbs energies
#: (``drg0_prime_mean.csv``, ``drg0_cov_sqrt.csv``; kJ/mol).
ICH360_DIR = Path(__file__).resolve().parents[1] / "data" / "models" / "iCH360"
_ICH360_JSON = "Escherichia_coli_iCH360.json"

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
        ``"iJO1366"`` the genome-scale case), ``"iCH360"`` (the paper's model, shipped with this
        package; ``$MPC_BIO_ICH360`` may point at another copy), or a path to an SBML (``.xml``, ``.xml.gz``,
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
    elif key.lower() == "ich360":
        path = find_ich360()
    else:
        path = Path(key).expanduser()
        if not path.exists():
            raise ModelLoadError(
                f"The model {key!r} is neither a bundled model nor an existing file. "
                f"Shipped models: {sorted(BUNDLED_MODELS) + ['iCH360']}; or give a path to an SBML "
                f"(.xml, .xml.gz), JSON or MAT file."
            )
    suffix = _suffix(path)
    reader = _READERS.get(suffix)
    if reader is None:
        raise ModelLoadError(
            f"The model file {str(path)!r} has the extension {suffix!r}; expected one of {sorted(_READERS)} (optionally gzipped)."
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
    import numpy as np
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


def find_ich360() -> Path:
    """Path of the iCH360 JSON model: ``$MPC_BIO_ICH360`` (the file or its folder) if set, else the shipped copy.

    Raises
    ------
    ModelLoadError
        If ``$MPC_BIO_ICH360`` is set but names no iCH360 JSON file.
    """
    import os

    env = os.environ.get("MPC_BIO_ICH360")
    if not env:
        return ICH360_DIR / _ICH360_JSON
    p = Path(env).expanduser()
    path = p / _ICH360_JSON if p.is_dir() else p
    if not path.is_file():
        raise ModelLoadError(
            f"$MPC_BIO_ICH360 is {env!r}, which is neither the iCH360 JSON file nor a folder holding "
            f"{_ICH360_JSON}; unset it to use the copy shipped with mpc_bio."
        )
    return path


def ich360_gibbs_energy_files() -> tuple[Path, Path]:
    """The shipped iCH360 standard reaction Gibbs energies: ``(mean_csv, cov_sqrt_csv)``.

    ``drg0_prime_mean.csv`` holds the mean transformed standard Gibbs energy of each reaction
    (kJ/mol, first column the reaction id), ``drg0_cov_sqrt.csv`` a square root Q of their
    covariance (dG ~ N(mean, Q Q^T); reactions without an estimate have variance 1e10). Taken
    from the folder of :func:`find_ich360`, so ``$MPC_BIO_ICH360`` moves both together.
    """
    folder = find_ich360().parent
    files = (folder / "drg0_prime_mean.csv", folder / "drg0_cov_sqrt.csv")
    for f in files:
        if not f.is_file():
            raise ModelLoadError(f"The iCH360 Gibbs-energy estimates are missing: no {f.name} in {str(folder)!r}.")
    return files
