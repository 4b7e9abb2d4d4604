"""The code version of every asset: a hash of the method's and the assets' source.

Dagster marks a materialization stale when its asset's code version or an upstream data
version changed since. Hashing the sources of ``t2g_lib`` and ``t2g_assets`` is coarse (any
code change makes every stage stale) but never wrong, and needs no version to bump by hand.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

_PACKAGES = ("t2g_lib", "t2g_assets")


def source_version() -> str:
    """Short content hash of every ``.py`` file of the method and the assets, in path order."""
    root = Path(__file__).resolve().parent.parent
    digest = hashlib.sha256()
    for package in _PACKAGES:
        for file in sorted((root / package).rglob("*.py")):
            digest.update(str(file.relative_to(root)).encode())
            digest.update(file.read_bytes())
    return digest.hexdigest()[:12]


CODE_VERSION = source_version()
