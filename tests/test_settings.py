import dataclasses

import pytest

from clipgen.errors import SettingsError
from clipgen.config.presets import available_presets, load_preset
from clipgen.config.settings import Settings, resolve_run_settings


def test_defaults_preset_flags_set_order(tmp_path):
    preset = tmp_path / "p.toml"
    preset.write_text('steps = 10\ncutn = 5\nlr = 0.3\n[fourier]\ndecay = 2.0\n')
    settings = resolve_run_settings(preset=str(preset), flags={"cutn": 7, "lr": 0.2}, assignments=["lr=0.1"])
    assert settings.steps == 10          # preset over default
    assert settings.cutn == 7            # flag over preset
    assert settings.lr == 0.1            # --set over flag
    assert settings.options.decay == 2.0  # generator section from the preset
    assert settings.optimizer == "adam"  # default kept


def test_preset_extends_another(tmp_path):
    (tmp_path / "base.toml").write_text('steps = 11\ncutn = 3\n')
    (tmp_path / "child.toml").write_text('extends = "base.toml"\ndescription = "c"\ncutn = 4\n')
    preset = load_preset(str(tmp_path / "child.toml"))
    assert preset.values == {"steps": 11, "cutn": 4}
    assert preset.description == "c"


def test_extends_cycle_is_an_error(tmp_path):
    (tmp_path / "a.toml").write_text('extends = "b.toml"\n')
    (tmp_path / "b.toml").write_text('extends = "a.toml"\n')
    with pytest.raises(SettingsError, match="extends itself"):
        load_preset(str(tmp_path / "a.toml"))


@pytest.mark.parametrize("assignment, fragment", [
    ("stepz=3", "unknown setting 'stepz'.*did you mean 'steps'"),
    ("fourier.decy=1", "unknown setting 'fourier.decy'"),
    ("steps=-1", "below the minimum"),
    ("optimizer=adan", "not one of adam, adamw, sgd"),
    ("size=10x", "expected 2 values"),
    ("video=maybe", "expected true or false"),
    ("nosuch.key=1", "unknown section"),
    ("noequals", "expected key=value"),
])
def test_bad_settings_name_the_problem(assignment, fragment):
    with pytest.raises(SettingsError, match=fragment):
        resolve_run_settings(assignments=[assignment])


def test_preset_error_names_the_file_and_key(tmp_path):
    preset = tmp_path / "bad.toml"
    preset.write_text('stepps = 3\n')
    with pytest.raises(SettingsError, match=r"unknown setting 'stepps' \(from preset .*bad.toml\)"):
        resolve_run_settings(preset=str(preset))


def test_preset_with_wrong_type(tmp_path):
    preset = tmp_path / "bad.toml"
    preset.write_text('steps = "many"\n')
    with pytest.raises(SettingsError, match=r"steps \(from preset .*bad.toml\): expected a whole number"):
        resolve_run_settings(preset=str(preset))


@pytest.mark.parametrize("name", sorted(available_presets()))
def test_every_shipped_preset_resolves(name):
    settings = resolve_run_settings(preset=name)
    assert settings.preset == name
    assert settings.options == settings.options  # typed options object was built


def test_settings_round_trip_through_dict():
    settings = resolve_run_settings(flags={"prompt": "x", "size": "64x32", "generator": "pixels"},
                                    assignments=["pixels.init_std=0.5"])
    assert Settings.from_dict(settings.to_dict()) == settings
    assert dataclasses.replace(settings, seed=3).to_dict()["seed"] == 3
