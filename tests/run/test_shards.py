"""--shard I/N and --shard auto: SLURM job arrays and Kubernetes indexed Jobs."""

import pytest

from clipgen.errors import SettingsError
from clipgen.run.shards import COUNT_VARIABLE, Shard, parse_shard


def slurm(task, count, low=None, step=None):
    env = {"SLURM_ARRAY_TASK_ID": str(task), "SLURM_ARRAY_TASK_COUNT": str(count)}
    if low is not None:
        env["SLURM_ARRAY_TASK_MIN"] = str(low)
    if step is not None:
        env["SLURM_ARRAY_TASK_STEP"] = str(step)
    return env


def test_explicit_and_absent_shards():
    assert parse_shard(None) == Shard(0, 1)
    assert (parse_shard("2/5").index, parse_shard("2/5").count) == (2, 5)
    for bad in ("5/5", "x/2", "-1/3", "1/0"):
        with pytest.raises(SettingsError, match="--shard"):
            parse_shard(bad)


@pytest.mark.parametrize("tasks", [
    [slurm(t, 4) for t in range(4)],  # --array=0-3
    [slurm(t, 4, low=1) for t in range(1, 5)],  # --array=1-4
    [slurm(t, 3, low=10, step=5) for t in (10, 15, 20)],  # --array=10-20:5
    [{"JOB_COMPLETION_INDEX": str(i), COUNT_VARIABLE: "3"} for i in range(3)],
])
def test_auto_shards_cover_the_file_once(tasks):
    prompts = list(range(11))
    shards = [parse_shard("auto", env) for env in tasks]
    assert sorted((s.index, s.count) for s in shards) == [(i, len(tasks)) for i in range(len(tasks))]
    covered = [p for s in shards for p in s.select(prompts)]
    assert sorted(covered) == prompts


def test_kubernetes_count_from_the_flag():
    shard = parse_shard("auto/4", {"JOB_COMPLETION_INDEX": "3"})
    assert (shard.index, shard.count, shard.source) == (3, 4, "JOB_COMPLETION_INDEX")


@pytest.mark.parametrize("spec, env, message", [
    ("auto", {}, "no SLURM_ARRAY_TASK_ID or JOB_COMPLETION_INDEX"),
    ("auto", {"SLURM_ARRAY_TASK_ID": "1"}, "SLURM_ARRAY_TASK_COUNT is not"),
    ("auto", slurm("one", 4), "not a whole number"),
    ("auto", slurm(4, 4), "out of range"),
    ("auto", slurm(6, 3, low=0, step=4), "not on the array's grid"),
    ("auto", {"JOB_COMPLETION_INDEX": "0"}, COUNT_VARIABLE),
    ("auto/2", {"JOB_COMPLETION_INDEX": "2"}, "out of range"),
    ("auto/3", slurm(0, 4), "says there are 4 tasks"),
    ("auto/x", {"JOB_COMPLETION_INDEX": "0"}, "auto/N"),
    ("auto", {**slurm(1, 4), "JOB_COMPLETION_INDEX": "2", COUNT_VARIABLE: "4"}, "unset one of them"),
])
def test_bad_environments_name_the_problem(spec, env, message):
    with pytest.raises(SettingsError, match=message):
        parse_shard(spec, env)


def test_both_schedulers_agreeing_is_fine():
    env = {**slurm(2, 4), "JOB_COMPLETION_INDEX": "2", COUNT_VARIABLE: "4"}
    assert (parse_shard("auto", env).index, parse_shard("auto", env).count) == (2, 4)
