"""A small content-addressed cache: results stored under ``<cache_dir>/<stage>-<hash>``.

The key is the SHA-256 of the canonical JSON of the settings that determine a result, so a
result is reused exactly when its inputs are unchanged. Entries are written into a temporary
sibling directory and renamed into place, so an interrupted run never leaves an entry that
looks complete.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import uuid
from pathlib import Path
from typing import Any, Callable

__all__ = ["config_hash", "cached_entry"]


def config_hash(config: Any) -> str:
    """SHA-256 (hex, first 16 characters) of the canonical JSON of ``config``."""
    text = json.dumps(config, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def cached_entry(cache_dir: str | Path, stage: str, key: str, build: Callable[[Path], None]) -> tuple[Path, bool]:
    """Directory of the cache entry ``stage-key``, built by ``build(tmp_dir)`` when absent.

    Returns
    -------
    path : Path
        The complete entry.
    reused : bool
        True when the entry existed already.
    """
    root = Path(cache_dir)
    final = root / f"{stage}-{key}"
    if (final / ".complete").is_file():
        return final, True
    root.mkdir(parents=True, exist_ok=True)
    tmp = root / f".tmp-{stage}-{key}-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        build(tmp)
        (tmp / ".complete").write_text(key)
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return final, False
