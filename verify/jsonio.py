"""Writing machine-readable results: ``--json PATH`` with ``-`` meaning standard output."""

from __future__ import annotations

import json
import sys
from pathlib import Path

__all__ = ["write_json"]


def write_json(path: str, payload: dict) -> None:
    """Write ``payload`` as indented JSON (key order as built, so equal inputs give identical files)."""
    text = json.dumps(payload, indent=2, allow_nan=False) + "\n"
    if path == "-":
        sys.stdout.write(text)
        sys.stdout.flush()
        return
    target = Path(path)
    if target.parent and not target.parent.exists():
        raise ValueError(f"json: directory {str(target.parent)!r} does not exist")
    target.write_text(text)
