"""``--compile auto``: by this machine's measurements, off without them."""

from __future__ import annotations

import json

import torch

from clipgen.run.compiling import CompileRecord, choose_compile, ledger_key, read_record, record_measurement

CPU = torch.device("cpu")


def test_auto_compiles_only_when_the_measured_saving_beats_the_compile():
    record = CompileRecord(eager_step=10.0, compiled_step=9.0, compile_seconds=120.0)
    assert choose_compile("auto", 300, record).compile  # 300 s saved > 120 s
    short = choose_compile("auto", 100, record)
    assert not short.compile and "100 s ≤ 120 s" in short.reason
    slower = CompileRecord(eager_step=1.0, compiled_step=1.2, compile_seconds=5)
    assert not choose_compile("auto", 10**6, slower).compile
    assert not choose_compile("auto", 300, CompileRecord()).compile  # never measured: off
    assert choose_compile("on", 1, CompileRecord()).compile and not choose_compile("off", 10**6, record).compile


def test_bench_measurements_fold_into_one_record_per_key(tmp_path):
    key = ledger_key(("ViT-B-32:none",), 32, torch.float32, CPU)
    assert read_record(tmp_path, key) == CompileRecord()
    record_measurement(tmp_path, key, compiled=True, step_seconds=9.0, warmup_seconds=130.0, warmup_steps=1)
    record = record_measurement(tmp_path, key, compiled=False, step_seconds=10.0, warmup_seconds=11.0,
                                warmup_steps=1)
    assert record == CompileRecord(eager_step=10.0, compiled_step=9.0, compile_seconds=121.0)
    assert read_record(tmp_path, key) == record
    other = ledger_key(("ViT-B-32:none",), 8, torch.float32, CPU)  # another cutout batch: another graph
    assert read_record(tmp_path, other) == CompileRecord()
    (path,) = tmp_path.glob("compile-*.json")
    assert json.loads(path.read_text())["key"] == key
    path.write_text("{broken")
    assert read_record(tmp_path, key) == CompileRecord()


def test_bench_records_and_a_run_reads_the_choice(run_cli, tiny_clip, tmp_path, monkeypatch):
    monkeypatch.setenv("CLIPGEN_HOME", str(tmp_path / "home"))
    bench = ["bench", "--preset", "pixels-256-cut32", "--clip", tiny_clip, "--size", "32", "--cutn", "2",
             "--steps", "1", "--warmup", "1", "--device", "cpu", "--precision", "fp32"]
    code, _, err = run_cli([*bench, "--compile", "off"])
    assert code == 0, err
    (path,) = (tmp_path / "home" / "probes").glob("compile-*.json")
    assert json.loads(path.read_text())["eager_step"] > 0
    args = ["generate", "a cat", "--clip", tiny_clip, "--size", "32x32", "--cutn", "2", "--steps", "3",
            "--out", str(tmp_path / "out"), "--device", "cpu", "--precision", "fp32"]
    code, _, err = run_cli([*args, "--dry-run"])
    assert code == 0 and "compile: off (auto: no compile measurement" in err
    data = json.loads(path.read_text())
    path.write_text(json.dumps({**data, "compiled_step": data["eager_step"] / 2, "compile_seconds": 0.0}))
    code, _, err = run_cli([*args, "--dry-run"])
    assert code == 0 and "compile: on (auto: 3 steps" in err
