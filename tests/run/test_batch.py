"""Batches: prompt files, per-line overrides, shards, resume, the contact sheet."""

import json
import re

import pytest
from fixtures import REPO_ROOT

from clipgen.errors import SettingsError
from clipgen.run.batch import parse_batch_text, select_shard

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
    covered = [i.index for s in range(3) for i in select_shard(items, s, 3)]
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
