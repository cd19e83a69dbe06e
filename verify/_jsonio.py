"""Machine-readable files: results written with ``--json PATH`` (``-`` meaning standard output), and the
settings files the commands read (``--config``, ``--training-set``)."""

from __future__ import annotations

import contextlib
import json
import os
import stat
import sys
import tempfile
from pathlib import Path

__all__ = ["write_json", "check_json_path", "check_output_dir", "atomic_path", "save_figure", "read_settings_file"]


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
    if target.exists() and not os.access(target, os.W_OK):
        raise ValueError(f"json: {path!r} is not writable")
    if target.exists() and stat.S_ISCHR(target.stat().st_mode):
        _probe_device("json", target)
    else:
        _probe_directory("json", parent)
        _check_name_length("json", parent, target.name)


def check_output_dir(path: str, name: str, file_names=()) -> None:
    """Check, before any work, that files ``file_names`` can be created in directory ``path`` (made if missing).

    The nearest existing ancestor must be a directory in which a file can be created (a temporary
    file is created and removed), on a device with free space, and every file name must fit the
    file system's limit on name length.

    Arguments:
        path: the directory (need not exist yet).
        name: the parameter named in messages (e.g. ``"out"``).
        file_names: the names of the files to be written there.

    Raises:
        ValueError: naming ``name``, when the files cannot be written.
    """
    if not path.strip():
        raise ValueError(f"{name}: the path is empty (give a directory, e.g. '.')")
    target = Path(path)
    if target.exists() and not target.is_dir():
        raise ValueError(f"{name}: {path!r} exists and is not a directory")
    existing = target
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise ValueError(f"{name}: {str(existing)!r} is not a directory")
    _probe_directory(name, existing)
    for file_name in file_names:
        _check_name_length(name, existing, file_name)


def _probe_directory(name: str, directory: Path) -> None:
    """A file can be created in ``directory``, on a device that is not full."""
    try:
        fd, tmp = tempfile.mkstemp(prefix=".ssmpoison-probe.", dir=directory)
    except OSError as exc:
        raise ValueError(f"{name}: cannot create files in {str(directory)!r} ({exc.strerror or exc})") from None
    os.close(fd)
    os.unlink(tmp)
    try:
        free = os.statvfs(directory)
        if free.f_bavail == 0 and free.f_blocks > 0:
            raise ValueError(f"{name}: no space left on the device of {str(directory)!r}")
    except (OSError, AttributeError):  # pragma: no cover - no statvfs
        pass


def _probe_device(name: str, device: Path) -> None:
    """A character device accepts a write (a newline: leading whitespace is still valid JSON)."""
    try:
        fd = os.open(device, os.O_WRONLY | os.O_APPEND | os.O_NONBLOCK)
        try:
            os.write(fd, b"\n")
        finally:
            os.close(fd)
    except OSError as exc:
        raise ValueError(f"{name}: cannot write to {str(device)!r} ({exc.strerror or exc})") from None


def _check_name_length(name: str, directory: Path, file_name: str) -> None:
    try:
        limit = os.pathconf(directory, "PC_NAME_MAX")
    except (OSError, ValueError, AttributeError):  # pragma: no cover
        limit = 255
    if len(os.fsencode(file_name)) > limit:
        raise ValueError(f"{name}: the file name {file_name[:40]!r}... is {len(os.fsencode(file_name))} bytes long, "
                         f"above the file system's limit of {limit}")


@contextlib.contextmanager
def atomic_path(path):
    """A temporary path beside ``path`` to write to; on success it replaces ``path`` (``os.replace``), else it is removed.

    Arguments:
        path: the final file.

    Yields:
        The temporary path (same directory, same suffix), for writers that take a file name.
    """
    target = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.stem[:80]}.", suffix=target.suffix, dir=target.parent)
    os.close(fd)
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def save_figure(fig, path, dpi: int = 120) -> None:
    """Write a matplotlib figure atomically (a complete file or none) and close it.

    Arguments:
        fig: the figure.
        path: the image file (its format from the suffix, e.g. PNG).
        dpi: its resolution.
    """
    import matplotlib.pyplot as plt

    try:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, dpi=dpi)
    finally:
        plt.close(fig)


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
        ValueError: the file's directory does not exist, or the file cannot be written (checked before the work
            by :func:`check_json_path`, which probes the path once).
    """
    try:
        text = json.dumps(payload, indent=2, allow_nan=False) + "\n"
    except ValueError as exc:  # a NaN or an infinity among the results: a bug, never written and never a refusal
        raise RuntimeError(f"the results hold a non-finite number, which JSON cannot carry ({exc})") from None
    if path == "-":
        sys.stdout.write(text)
        sys.stdout.flush()
        return
    target = Path(path)
    if not target.parent.is_dir():
        raise ValueError(f"json: directory {str(target.parent)!r} does not exist")
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


def read_settings_file(path: str, name: str) -> dict:
    """The keys of a settings file: JSON when the file is ``.json`` or its text starts with ``{``, TOML otherwise.

    Arguments:
        path: the file.
        name: the option that named it (``config``, ``training_set``), the start of every error message.

    Returns:
        The file's top-level table (a ``dict``).

    Raises:
        ValueError: one line starting with ``name``: the file cannot be read, is not UTF-8 text, is not
            valid JSON or TOML, or its JSON is not an object.
    """
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ValueError(f"{name}: cannot read {path!r} ({exc.strerror or exc})") from None
    except UnicodeDecodeError:
        raise ValueError(f"{name}: {path!r} is not UTF-8 text") from None
    if path.lower().endswith(".json") or text.lstrip().startswith("{"):
        try:
            payload = json.loads(text)
        except (json.JSONDecodeError, RecursionError) as exc:
            raise ValueError(f"{name}: {path!r} is not valid JSON ({getattr(exc, 'msg', exc)})") from None
        if not isinstance(payload, dict):
            raise ValueError(f"{name}: {path!r} must hold a JSON object")
        return payload
    import tomllib

    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"{name}: {path!r} is not valid TOML ({exc})") from None
