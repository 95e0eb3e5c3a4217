import json

from clipgen.bench.cases import CASES, STAGES


def test_bench_json_has_every_stage(run_cli, tiny_clip):
    code, out, err = run_cli(["bench", "--preset", "fourier-256-cut32", "--clip", tiny_clip, "--size", "32",
                              "--cutn", "2", "--steps", "2", "--warmup", "1", "--device", "cpu", "--json"])
    assert code == 0, err
    result = json.loads(out)
    assert set(result["stages"]) == set(STAGES)
    assert all(v >= 0 for v in result["stages"].values())
    assert abs(sum(result["stages"].values()) - result["seconds_per_step"]) < 0.05 * result["seconds_per_step"]
    assert result["steps_per_second"] > 0 and result["peak_memory_mb"] > 0


def test_bench_table_and_list(run_cli, tiny_clip):
    code, out, _ = run_cli(["bench", "--list"])
    assert code == 0 and all(name in out for name in CASES)
    code, out, _ = run_cli(["bench", "--preset", "clipdraw-224-cut8", "--clip", tiny_clip, "--size", "32",
                            "--cutn", "2", "--steps", "1", "--warmup", "0", "--device", "cpu"])
    assert code == 0 and "steps/s" in out and "backward" in out


def test_unknown_bench_preset(run_cli):
    code, _, err = run_cli(["bench", "--preset", "vqgan-265-cut32"])
    assert code == 2 and "did you mean 'vqgan-256-cut32'" in err


def test_vqgan_case_runs_the_real_architecture_briefly(bench_json):
    """The README's bench command, shrunk (size, cutouts, steps) so CI can afford it."""
    result = bench_json("--preset", "vqgan-256-cut32", "--size", "64", "--cutn", "4", "--cut-batch", "2",
                        "--precision", "fp32")
    assert result["precision"] == "fp32" and result["size"] == 64 and result["cut_batch"] == 2
    assert result["stages"]["generator"] > 0 and result["stages"]["backward"] > 0
