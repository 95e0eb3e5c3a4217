"""Batches: prompt files, per-line overrides, shards, resume, the contact sheet."""

import json
import re

import pytest
from fixtures import REPO_ROOT

from clipgen.errors import SettingsError
from clipgen.run.batch import parse_batch_text
from clipgen.run.shards import Shard

FAST = ["--size", "32x32", "--steps", "3", "--set", "cutn=2", "--set", "save_every=0", "-g", "pixels"]


def test_parse_skips_comments_and_reads_overrides():
    items = parse_batch_text("# c\n\na castle at dusk\na castle | seed=3 steps=200 generator=vqgan\n")
    assert [i.prompt for i in items] == ["a castle at dusk", "a castle"]
    assert items[1].overrides == ("seed=3", "steps=200", "generator=vqgan")
    assert [i.line for i in items] == [3, 4] and [i.index for i in items] == [0, 1]


def test_bad_override_names_the_line():
    with pytest.raises(SettingsError, match="line 2"):
        parse_batch_text("ok\nbad | seed\n")


def test_shards_cover_every_item_exactly_once():
    items = parse_batch_text("\n".join(f"p{i}" for i in range(7)))
    covered = [i.index for s in range(3) for i in Shard(s, 3).select(items)]
    assert sorted(covered) == list(range(7))


@pytest.fixture
def prompt_file(tmp_path):
    path = tmp_path / "prompts.txt"
    path.write_text("# three prompts and a broken one\na red apple\n\na blue sky | seed=5\n"
                    "bad line | optimizer=adan\na green hill\n")
    return path


def test_batch_runs_reports_failure_writes_index_and_resumes(run_cli, tiny_clip, tmp_path, prompt_file):
    out = tmp_path / "out"
    code, stdout, _ = run_cli(["batch", prompt_file, "--clip", tiny_clip, "--out", out, "--json", *FAST])
    assert code == 1  # one prompt failed
    rows = json.loads(stdout)
    assert [r["status"] for r in rows] == ["finished", "finished", "failed", "finished"]
    assert "adan" in rows[2]["error"] and rows[2]["line"] == 5
    assert rows[1]["seed"] == 5
    folders = sorted(p.name for p in out.iterdir() if p.is_dir())
    assert folders == ["0000-a-red-apple", "0001-a-blue-sky", "0003-a-green-hill"]
    page = (out / "index.html").read_text()
    links = set(re.findall(r'(?:href|src)="([^"]+)"', page))
    assert len(links) == 6 and all((out / link).is_file() for link in links)

    code, stdout, _ = run_cli(["batch", prompt_file, "--clip", tiny_clip, "--out", out, "--json",
                               "--resume", *FAST])
    rows = json.loads(stdout)
    assert [r["status"] for r in rows] == ["skipped", "skipped", "failed", "skipped"]
    assert sorted(p.name for p in out.iterdir() if p.is_dir()) == folders  # nothing re-ran


def test_two_shards_cover_the_file_once(run_cli, tiny_clip, tmp_path, prompt_file):
    out = tmp_path / "out"
    seen = []
    for shard in ("0/2", "1/2"):
        _, stdout, _ = run_cli(["batch", prompt_file, "--clip", tiny_clip, "--out", out, "--json",
                                "--shard", shard, *FAST])
        seen += [r["line"] for r in json.loads(stdout)]
    assert sorted(seen) == [2, 4, 5, 6]
    assert len([p for p in out.iterdir() if p.is_dir()]) == 3


def test_missing_or_binary_batch_file_is_exit_2(run_cli, tmp_path):
    code, _, err = run_cli(["batch", tmp_path / "none.txt"])
    assert code == 2 and "does not exist" in err
    binary = tmp_path / "b.txt"
    binary.write_bytes(b"\x00\x01")
    code, _, err = run_cli(["batch", binary])
    assert code == 2 and "binary" in err


def test_example_prompt_file_parses():
    items = parse_batch_text((REPO_ROOT / "examples" / "prompts.txt").read_text())
    assert len(items) == 3 and items[2].overrides[0] == "generator=pixels"


def test_example_prompt_file_runs(run_cli, tiny_clip, tmp_path):
    example = REPO_ROOT / "examples" / "prompts.txt"
    code, stdout, err = run_cli(["batch", example, "--clip", tiny_clip, "--out", tmp_path, "--json", *FAST])
    assert code == 0, err
    assert [r["status"] for r in json.loads(stdout)] == ["finished"] * 3


@pytest.mark.slow
def test_one_worker_per_device(run_cli, tiny_clip, tmp_path, prompt_file):
    code, _, _ = run_cli(["batch", prompt_file, "--clip", tiny_clip, "--out", tmp_path, "-q",
                          "--devices", "cpu,cpu", *FAST])
    assert code == 1  # the broken line still fails, in whichever worker had it
    folders = sorted(p.name for p in tmp_path.iterdir() if p.is_dir())
    assert folders == ["0000-a-red-apple", "0001-a-blue-sky", "0003-a-green-hill"]
    assert (tmp_path / "index.html").read_text().count("<figure>") == 3


def test_shard_auto_reads_slurm_and_kubernetes(run_cli, tiny_clip, tmp_path, monkeypatch):
    prompts = tmp_path / "two.txt"
    prompts.write_text("a red apple\na blue sky\n")
    out = tmp_path / "out"
    seen = []
    for env in ({"SLURM_ARRAY_TASK_ID": "1", "SLURM_ARRAY_TASK_COUNT": "2", "SLURM_ARRAY_TASK_MIN": "1"},
                {"JOB_COMPLETION_INDEX": "1", "CLIPGEN_SHARD_COUNT": "2"}):
        with monkeypatch.context() as patched:
            for name, value in env.items():
                patched.setenv(name, value)
            code, stdout, err = run_cli(["batch", prompts, "--clip", tiny_clip, "--out", out, "--json",
                                         "--shard", "auto", *FAST])
        assert code == 0, err
        seen += [r["line"] for r in json.loads(stdout)]
    assert seen == [1, 2]  # SLURM task 1 of 1-2 is shard 0; pod 1 is shard 1
    assert sorted(p.name for p in out.iterdir() if p.is_dir()) == ["0000-a-red-apple", "0001-a-blue-sky"]


def test_shard_auto_without_a_scheduler_is_exit_2(run_cli, tmp_path, prompt_file, monkeypatch):
    for name in ("SLURM_ARRAY_TASK_ID", "JOB_COMPLETION_INDEX"):
        monkeypatch.delenv(name, raising=False)
    code, _, err = run_cli(["batch", prompt_file, "--out", tmp_path / "out", "--shard", "auto"])
    assert code == 2 and "JOB_COMPLETION_INDEX" in err and "--shard I/N" in err
    assert len(err.strip().splitlines()) == 1 and not (tmp_path / "out").exists()


def test_ray_and_devices_together_is_exit_2(run_cli, tmp_path, prompt_file):
    code, _, err = run_cli(["batch", prompt_file, "--out", tmp_path / "out", "--ray", "local",
                            "--devices", "cpu,cpu"])
    assert code == 2 and "--ray" in err and not (tmp_path / "out").exists()


def test_examples_take_their_shard_from_the_scheduler():
    import yaml

    job = yaml.safe_load((REPO_ROOT / "examples" / "k8s-indexed-job.yaml").read_text())
    spec = job["spec"]
    container = spec["template"]["spec"]["containers"][0]
    env = {e["name"]: e["value"] for e in container["env"]}
    assert spec["completionMode"] == "Indexed" and env["CLIPGEN_SHARD_COUNT"] == str(spec["completions"])
    assert container["command"][:2] == ["clipgen", "batch"]
    assert {"--shard", "auto", "--resume"} <= set(container["command"])
    script = (REPO_ROOT / "examples" / "slurm-array.sh").read_text()
    assert "#SBATCH --array=" in script and "--shard auto --resume" in script


def test_a_stopped_batch_ends_and_resume_continues_the_stopped_prompt(tiny_clip, tmp_path):
    from PIL import Image

    from clipgen.outputs.run_record import read_record
    from clipgen.run.batch import run_batch, settings_for
    from clipgen.run.interrupts import StopWhen

    items = parse_batch_text("a red apple\na blue sky\n")
    flags = {"clip": [tiny_clip], "size": "32x32", "steps": 8, "generator": "pixels", "seed": 3}
    assign = ["cutn=2", "save_every=0", "checkpoint_every=2"]

    def pixels(outcome):
        with Image.open(read_record(outcome.folder)["files"]["image"]) as image:
            return image.convert("RGB").tobytes()

    whole = run_batch(items, settings_for(None, {**flags, "out": str(tmp_path / "whole")}, assign), tmp_path / "whole")
    out = tmp_path / "out"
    resolve = settings_for(None, {**flags, "out": str(out)}, assign)
    seen = []
    stopped = run_batch(items, resolve, out,
                        callbacks_for=lambda item: [StopWhen(lambda: len(seen) > 5), seen.append])
    assert [o.status for o in stopped] == ["interrupted"]  # the batch ended there, the second never started
    resumed = run_batch(items, resolve, out, resume=True)
    assert [o.status for o in resumed] == ["finished", "finished"]
    assert resumed[0].folder == stopped[0].folder
    assert [pixels(o) for o in resumed] == [pixels(o) for o in whole]  # resumed exactly


def test_a_batch_keeps_clip_and_decoders_loaded_and_images_stay_the_same(tiny_clip, tiny_vqgan, tmp_path):
    from PIL import Image

    from clipgen.outputs.run_record import read_record
    from clipgen.run.batch import KeptModels, run_item, settings_for

    items = parse_batch_text("a red apple\na blue sky | vqgan.checkpointing=true\n")
    flags = {"clip": [tiny_clip], "size": "32x32", "steps": 3, "generator": "vqgan", "seed": 3,
             "vqgan": {"config": str(tiny_vqgan[0]), "checkpoint": str(tiny_vqgan[1])}}

    def pixels(outcome):
        with Image.open(read_record(outcome.folder)["files"]["image"]) as image:
            return image.convert("RGB").tobytes()

    def run_all(out, kept_for):
        resolve = settings_for(None, {**flags, "out": str(out)}, ["cutn=2", "save_every=0"])
        return [run_item(item, resolve(item), out, False, [], kept_for()) for item in items]

    kept = KeptModels()
    shared = run_all(tmp_path / "shared", lambda: kept)
    assert (kept.perceptors, len(kept.decoders)) == (1, 1)  # one CLIP, one VQGAN for both prompts
    fresh = run_all(tmp_path / "fresh", KeptModels)  # every prompt loads its own
    assert [pixels(o) for o in shared] == [pixels(o) for o in fresh]


def test_candidate_runs_in_a_batch_get_the_batch_folder_and_a_card(run_cli, tiny_clip, tmp_path):
    prompts = tmp_path / "one.txt"
    prompts.write_text("a red apple | candidates=2\n")
    out = tmp_path / "out"
    code, stdout, err = run_cli(["batch", prompts, "--clip", tiny_clip, "--out", out, "--json", *FAST])
    assert code == 0, err
    assert [p.name for p in out.iterdir() if p.is_dir()] == ["0000-a-red-apple"]
    assert 'src="0000-a-red-apple/best-1.png"' in (out / "index.html").read_text()
    code, stdout, _ = run_cli(["batch", prompts, "--clip", tiny_clip, "--out", out, "--json", "--resume", *FAST])
    assert [r["status"] for r in json.loads(stdout)] == ["skipped"]
