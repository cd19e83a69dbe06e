"""The public surface: every name of ``ssmpoison.theory`` / ``ssmpoison.verify`` imports, is documented,
and lives in a private module; importing the packages costs nothing until a name is used."""

from __future__ import annotations

import importlib
import inspect
import subprocess
import sys
import types

import pytest

PACKAGES = ("ssmpoison.theory", "ssmpoison.verify")


def _public(package):
    mod = importlib.import_module(package)
    return [(mod, name) for name in mod.__all__]


@pytest.mark.parametrize("mod,name", [pair for p in PACKAGES for pair in _public(p)],
                         ids=lambda x: getattr(x, "__name__", str(x)))
def test_public_name_imports_is_documented_and_private_underneath(mod, name):
    value = getattr(mod, name)
    assert f"`{name}`" in mod.__doc__, f"{mod.__name__}.{name} is not listed in the package docstring"
    if isinstance(value, types.ModuleType):  # only the reference formulas are exported as a namespace
        assert value.__name__ == "ssmpoison.verify._kernels" and value.__doc__
    elif inspect.isclass(value) or inspect.isfunction(value):
        assert value.__module__.split(".")[-1].startswith("_"), f"{name} is defined in a public module"
        assert value.__doc__ and value.__doc__.strip(), f"{mod.__name__}.{name} has no docstring"
    exec(f"from {mod.__name__} import {name}", {})


def test_dir_lists_the_public_names():
    for package in PACKAGES:
        mod = importlib.import_module(package)
        assert set(mod.__all__) <= set(dir(mod))
        with pytest.raises(AttributeError):
            getattr(mod, "no_such_name")


def test_importing_the_command_line_pulls_in_neither_sympy_nor_matplotlib():
    code = "import sys, ssmpoison.verify.cli, ssmpoison.theory; print('sympy' in sys.modules, 'matplotlib' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["False", "False"]


def test_every_module_but_the_command_line_is_private():
    from pathlib import Path

    for package in PACKAGES:
        folder = Path(importlib.import_module(package).__file__).parent
        public = sorted(p.name for p in folder.glob("*.py") if not p.name.startswith("_"))
        assert public == (["cli.py"] if package.endswith("verify") else [])
