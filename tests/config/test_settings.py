"""Settings: the merge defaults < preset < flags < --set, typed errors that name key and source."""

import dataclasses

import pytest

from clipgen.config.presets import available_presets, load_preset
from clipgen.config.settings import Settings, resolve_run_settings
from clipgen.errors import SettingsError


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


@pytest.mark.parametrize("assignment, fragment", [
    ("lr=nan", r"^lr \(from --set\): nan is not a finite number; give a number such as 0\.1$"),
    ("lr=-inf", r"^lr \(from --set\): -inf is not a finite number"),
    ("zoom=Infinity", r"^zoom \(from --set\): Infinity is not a finite number; give a number such as 1\.0$"),
    ("pan=0,nan", r"^pan \(from --set\): nan is not a finite number"),
    ("fourier.decay=inf", r"^fourier\.decay \(from --set\): inf is not a finite number; give a number such as 1\.0$"),
    ("cut_pow=1e999", r"^cut_pow \(from --set\): 1e999 is not a finite number"),
    ("steps=nan", r"^steps \(from --set\): expected a whole number, got 'nan'$"),
])
def test_non_finite_numbers_are_rejected_with_a_fix(assignment, fragment):
    with pytest.raises(SettingsError, match=fragment):
        resolve_run_settings(assignments=[assignment])


def test_non_finite_values_from_presets_and_python_are_rejected(tmp_path):
    preset = tmp_path / "p.toml"
    preset.write_text("tv_weight = nan\n")  # TOML has nan and inf literals
    with pytest.raises(SettingsError, match=r"tv_weight \(from preset .*p.toml\): nan is not a finite number"):
        resolve_run_settings(preset=str(preset))
    with pytest.raises(SettingsError, match=r"lr \(from command line\): inf is not a finite number"):
        resolve_run_settings(flags={"lr": float("inf")})


@pytest.mark.parametrize("values, fragment", [
    ({"steps": 1.5}, "expected a whole number, got 1.5"),
    ({"steps": True}, "expected a whole number, got True"),
    ({"cutn": " 7 "}, None),
    ({"cut_pow": 2}, None),
    ({"cut_pow": "x"}, "expected a number, got 'x'"),
])
def test_whole_numbers_and_numbers(values, fragment):
    if fragment is None:
        settings = resolve_run_settings(flags=values)
        assert all(getattr(settings, k) == float(v) for k, v in values.items())
    else:
        with pytest.raises(SettingsError, match=fragment):
            resolve_run_settings(flags=values)


def test_describe_reads_help_choices_and_range():
    from clipgen.config.typed import describe

    fields = {f.name: f for f in dataclasses.fields(Settings)}
    assert describe(fields["cutn"]) == "Cutouts per step (1 to 4,096)."
    assert describe(fields["seed"]) == "Random seed (default: drawn and recorded; at least 0)."
    assert describe(fields["optimizer"]) == "Optimiser (one of adam, adamw, sgd)."
    assert describe(fields["generator"], choices=["a", "b"], notes=("see x",)) == \
        "What makes the image (see x; one of a, b)."
