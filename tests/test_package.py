"""Packaging contracts: cheap import, headless core, manifest shipped and valid."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _modules_after(statement: str) -> set[str]:
    code = f"import sys; {statement}; print('\\n'.join(sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    return set(out.split())


def test_importing_the_package_imports_neither_torch_nor_qt():
    mods = _modules_after("import napari_nninteractive")
    assert not {"torch", "qtpy", "PyQt5", "napari", "magicgui"} & mods


@pytest.mark.slow
def test_core_and_cli_never_import_qt_napari_or_magicgui():
    mods = _modules_after(
        "import napari_nninteractive.core.session, napari_nninteractive.core.engines.network, "
        "napari_nninteractive.cli.segment, napari_nninteractive.io.volumes"
    )
    assert not {"qtpy", "PyQt5", "PyQt6", "PySide2", "PySide6", "napari", "magicgui", "superqt"} & mods


def test_import_linter_contract_holds():
    exe = Path(sys.executable).with_name("lint-imports")
    if not exe.exists():
        pytest.skip("import-linter is not installed (pip install -e .[testing])")
    result = subprocess.run([str(exe)], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_manifest_is_shipped_in_the_package_and_valid():
    from importlib.resources import files

    import npe2

    shipped = files("napari_nninteractive").joinpath("napari.yaml").read_text()
    assert shipped == (ROOT / "napari.yaml").read_text()
    manifest = npe2.PluginManifest.from_file(ROOT / "napari.yaml")
    assert manifest.name == "napari-nninteractive"


def test_version_is_exposed():
    import napari_nninteractive

    assert napari_nninteractive.__version__.count(".") == 2


@pytest.mark.slow
def test_opening_the_dock_imports_no_torch():
    mods = _modules_after("import napari_nninteractive.gui.widget")
    assert "torch" not in mods  # torch loads with the model, in the background, not when the dock opens
