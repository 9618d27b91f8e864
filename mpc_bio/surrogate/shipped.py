"""Where the surrogates shipped with the package live (paths only: no torch import)."""

from __future__ import annotations

from pathlib import Path

__all__ = ["DEFAULT_ARTIFACT", "SHIPPED_SURROGATES", "shipped_artifact"]

#: Directory of the shipped default surrogate (e_coli_core, glucose x oxygen 0-20 mmol/gDW/h).
DEFAULT_ARTIFACT = Path(__file__).resolve().parents[1] / "data" / "surrogates" / "e_coli_core"
#: Shipped surrogates by model name -> artifact directory (each over glucose x oxygen uptakes
#: 0-20 mmol/gDW/h; the json of each records its training-data hash, metrics and settings).
SHIPPED_SURROGATES: dict[str, Path] = {
    "e_coli_core": DEFAULT_ARTIFACT,
    "iCH360": DEFAULT_ARTIFACT.parent / "iCH360",
}


def shipped_artifact(name: str) -> tuple[str, Path] | None:
    """``(canonical name, directory)`` of the shipped surrogate called ``name`` (any case), or None."""
    for key, path in SHIPPED_SURROGATES.items():
        if key.lower() == str(name).lower():
            return key, path
    return None
