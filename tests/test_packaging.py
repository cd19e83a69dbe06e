"""The package installs as ``ssmpoison.theory`` / ``ssmpoison.verify``: no file imports a bare ``theory`` or ``verify``."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
_BARE = re.compile(r"^\s*(?:from|import)\s+(?:theory|verify)\b", re.MULTILINE)
_MINUS_M = re.compile(r"""["'](?:theory|verify)\.cli["']""")


def _project_files():
    for folder in ("theory", "verify", "tests", "benchmarks", "proofs_notes"):
        for path in sorted((ROOT / folder).rglob("*")):
            if path.suffix in (".py", ".md"):
                yield path


def test_no_bare_theory_or_verify_import():
    offenders = []
    for path in _project_files():
        text = path.read_text(encoding="utf-8")
        for pattern in (_BARE, _MINUS_M):
            for match in pattern.finditer(text):
                line = text.count("\n", 0, match.start()) + 1
                offenders.append(f"{path.relative_to(ROOT)}:{line}: {match.group(0).strip()}")
    assert not offenders, "bare imports of theory/verify:\n" + "\n".join(offenders)


def test_the_checker_sees_a_bare_import(tmp_path):
    assert _BARE.search("x = 1\nfrom verify.flow import run_flow\n")
    assert _BARE.search("    import theory.oracle\n")
    assert not _BARE.search("from ssmpoison.verify._flow import run_flow\n")


def test_packages_resolve_inside_ssmpoison():
    import ssmpoison.theory
    import ssmpoison.verify

    assert Path(ssmpoison.theory.__file__).parent == ROOT / "theory"
    assert Path(ssmpoison.verify.__file__).parent == ROOT / "verify"
