"""The app: version, module entry point, one error path without tracebacks, presets and
generators listings, start-up without torch.
"""

import subprocess
import sys

import pytest


@pytest.mark.slow
def test_version_and_module_entry_point():
    result = subprocess.run([sys.executable, "-m", "clipgen", "--version"], capture_output=True, text=True)
    assert result.returncode == 0
    from clipgen import __version__

    assert result.stdout.strip() == f"clipgen {__version__}"


@pytest.mark.slow
def test_real_process_error_has_no_traceback(tmp_path):
    result = subprocess.run([sys.executable, "-m", "clipgen", "generate", "x", "--steps", "nope"],
                            capture_output=True, text=True)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_presets_commands(run_cli):
    code, out, _ = run_cli(["presets", "list"])
    assert code == 0 and "draft" in out and "fourier" in out
    code, out, _ = run_cli(["presets", "show", "draft"])
    assert code == 0 and "steps = 100" in out and "size = [128, 128]" in out


@pytest.mark.slow
def test_root_help_imports_no_torch():
    """`clipgen --help` builds every command, generate's schema-read flags included."""
    code = ("import sys\nfrom clipgen.cli.app import main\ntry:\n    main(['--help'])\n"
            "except SystemExit:\n    pass\nsys.stderr.write(str('torch' in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert "Usage" in result.stdout and result.stderr.strip().splitlines()[-1] == "False", result.stderr


def test_generators_command_lists_each_generator_and_its_options(run_cli):
    import dataclasses

    from clipgen.generators import generator_names, get_generator_class

    code, out, err = run_cli(["generators"])
    assert code == 0, err
    for name in generator_names():
        assert f"\n{name}: " in f"\n{out}"
        for field in dataclasses.fields(get_generator_class(name).Options):
            assert field.name in out
    vqgan = out[out.index("\nvqgan: "):]
    assert "model" in vqgan and "checkpointing" in vqgan and "imagenet-f16-16384" in vqgan
    assert "--set GENERATOR.KEY=VALUE" in " ".join(out.split())
