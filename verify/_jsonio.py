"""Writing machine-readable results: ``--json PATH`` with ``-`` meaning standard output."""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path

__all__ = ["write_json", "check_json_path"]


def check_json_path(path: str | None) -> None:
    """Check, before any work, that :func:`write_json` will be able to write to ``path``.

    Arguments:
        path: the ``--json`` argument: ``None`` (no JSON), ``"-"`` (standard output) or a file path.

    Raises:
        ValueError: ``path`` is empty, its directory does not exist or is not writable, or it is a directory.
    """
    if path is None or path == "-":
        return
    if not path.strip():
        raise ValueError("json: the path is empty (give a file, or '-' for standard output)")
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


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_json(path: str, payload: dict) -> None:
    """Write ``payload`` as indented JSON (key order as built, so equal inputs give identical files).

    A file is written atomically: the text goes to a temporary file in the same directory, which
    then replaces ``path`` (``os.replace``), so ``path`` holds either its previous content or the
    complete new file, whatever happens (a full disk, a kill). A path that exists and is not a
    regular file (a device such as ``/dev/null``, a pipe) is written directly.

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
    target = Path(path)
    try:
        if target.exists() and not target.is_file():
            with open(target, "w") as fh:
                fh.write(text)
            return
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
        try:
            os.chmod(tmp, target.stat().st_mode & 0o777 if target.exists() else 0o666 & ~_umask())
            with os.fdopen(fd, "w") as fh:
                fh.write(text)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    except OSError as exc:
        raise ValueError(f"json: could not write {path!r}: {exc.strerror or exc}") from None
