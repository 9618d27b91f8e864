"""Integrity of a surrogate artifact's files, checked without torch.

An artifact is ``surrogate.json`` (ids, domain, scalings, settings, metrics, the weights' SHA-256
and the SHA-256 of all of that, ``content_sha256``) beside ``weights.npz``. The loader and
``mpc-bio validate`` check both hashes through :func:`integrity_problem`, so an edited or mixed
artifact is refused before any work.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from mpc_bio.outputs import json_default

__all__ = ["JSON_NAME", "NPZ_NAME", "content_digest", "file_sha256", "integrity_problem"]

JSON_NAME, NPZ_NAME = "surrogate.json", "weights.npz"


def content_digest(meta: dict) -> str:
    """SHA-256 of an artifact json's whole content (ids, domain, scalings, settings, metrics and
    the weights' own SHA-256), without its ``content_sha256`` entry: any edit of the json or the
    weights changes it. Canonical form: sorted keys, no whitespace (floats round-trip exactly)."""
    body = {k: v for k, v in meta.items() if k != "content_sha256"}
    blob = json.dumps(body, sort_keys=True, separators=(",", ":"), default=json_default).encode()
    return hashlib.sha256(blob).hexdigest()


def file_sha256(path: Path) -> str:
    """SHA-256 of a file's bytes, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def integrity_problem(meta: dict, json_path: Path, npz_path: Path) -> str | None:
    """What is wrong with an artifact's hashes, or None when both match.

    An artifact without ``content_sha256`` (written before content hashes) passes here; the loader
    warns about it. ``meta`` is the parsed ``json_path``.
    """
    if "content_sha256" in meta and content_digest(meta) != meta["content_sha256"]:
        return (
            f"The content of {json_path} does not match its recorded SHA-256: the json was edited after it was "
            "written (reaction ids, inputs, domain, scaling, settings or metrics). Re-train, or restore the "
            "original file."
        )
    digest = file_sha256(npz_path)
    if digest != meta.get("weights_sha256"):
        return (
            f"The weights in {npz_path} do not match the SHA-256 recorded in {json_path} "
            f"({digest[:16]}... != {str(meta.get('weights_sha256'))[:16]}...): the artifact is corrupted or mixed."
        )
    return None
