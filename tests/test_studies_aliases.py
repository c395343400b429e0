"""The study commands' old paths (analysis.ablation, ...) still work, warn, and are the new modules."""
from __future__ import annotations

import importlib
import runpy
import sys

import pytest

STUDIES = ["ablation", "lam_study", "sweep", "distances", "report"]


@pytest.mark.parametrize("name", STUDIES)
def test_old_import_path_warns_and_is_the_new_module(name, monkeypatch):
    import analysis

    new = importlib.import_module(f"analysis.studies.{name}")
    monkeypatch.delitem(sys.modules, f"analysis.{name}", raising=False)  # so that the alias runs again
    monkeypatch.delattr(analysis, name, raising=False)
    with pytest.warns(DeprecationWarning, match=f"analysis.studies.{name}"):
        old = importlib.import_module(f"analysis.{name}")
    assert old is new and getattr(analysis, name) is new  # `from analysis import X` gives the new module
    monkeypatch.setattr(old, "main", "patched")
    assert new.main == "patched"  # monkeypatching the old name patches the module the code uses


@pytest.mark.parametrize("name", STUDIES)
def test_old_command_warns_and_runs_the_new_main(name, monkeypatch, capsys):
    new = importlib.import_module(f"analysis.studies.{name}")
    monkeypatch.setattr(sys, "argv", [f"{name}.py", "--help"])
    with pytest.raises(SystemExit):
        new.main()
    usage = capsys.readouterr().out
    # `python -m analysis.NAME --help`, in this process: runpy is what `python -m` runs
    monkeypatch.delitem(sys.modules, f"analysis.{name}", raising=False)
    with pytest.raises(SystemExit) as stop, pytest.warns(DeprecationWarning, match=f"analysis.studies.{name}"):
        runpy.run_module(f"analysis.{name}", run_name="__main__")
    assert stop.value.code == 0 and capsys.readouterr().out == usage != ""


def test_lam_study_load_faces_is_the_deprecated_name_of_lr_faces_by_name(tmp_path):
    from PIL import Image

    from analysis.studies import lam_study

    Image.new("RGB", (140, 130), (200, 120, 90)).save(tmp_path / "face.png")
    with pytest.warns(DeprecationWarning, match="lr_faces_by_name"):
        old = lam_study.load_faces(tmp_path, 1, 4)
    new = lam_study.lr_faces_by_name(tmp_path, 1, 4)
    assert list(old) == list(new) == ["face.png"] and old["face.png"].equal(new["face.png"])
