"""Writing machine-readable results: ``--json PATH`` with ``-`` meaning standard output."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

__all__ = ["write_json", "check_json_path"]


def check_json_path(path: str | None) -> None:
    """Check, before any work, that :func:`write_json` will be able to write to ``path``.

    Arguments:
        path: the ``--json`` argument: ``None`` or ``""`` (no JSON), ``"-"`` (standard output) or a file path.

    Raises:
        ValueError: the file's directory does not exist or is not writable, or ``path`` is a directory.
    """
    if not path or path == "-":
        return
    target = Path(path)
    parent = target.parent
    if not parent.exists():
        raise ValueError(f"json: directory {str(parent)!r} does not exist")
    if not parent.is_dir():
        raise ValueError(f"json: {str(parent)!r} is not a directory")
    if target.is_dir():
        raise ValueError(f"json: {path!r} is a directory")
    if not os.access(parent, os.W_OK | os.X_OK) or (target.exists() and not os.access(target, os.W_OK)):
        raise ValueError(f"json: {path!r} is not writable")


def write_json(path: str, payload: dict) -> None:
    """Write ``payload`` as indented JSON (key order as built, so equal inputs give identical files).

    Arguments:
        path: a file path, or ``"-"`` for standard output.
        payload: a JSON-serialisable object without NaN or infinities.

    Raises:
        ValueError: the file's directory does not exist (or another :func:`check_json_path` failure).
    """
    text = json.dumps(payload, indent=2, allow_nan=False) + "\n"
    if path == "-":
        sys.stdout.write(text)
        sys.stdout.flush()
        return
    check_json_path(path)
    Path(path).write_text(text)
