"""The toy training commands run end to end on tiny settings (not the full training)."""

import json

from safetensors.torch import load_file

from clipgen.toy.train_clip import TrainConfig, train


def test_train_clip_few_steps_saves_a_loadable_local_dir(tmp_path):
    losses = []
    config = TrainConfig(steps=3, batch_size=16, group_size=4, pool_batches=2, warmup=1,
                         eval_images=4, threads=1)
    metrics = train(config, out_dir=tmp_path / "clip", on_step=lambda step, loss: losses.append(loss))
    assert len(losses) == 3 and all(l == l and l > 0 for l in losses)
    assert set(metrics["zero_shot"]) == {"colour", "shape", "background", "position", "size"}
    assert all(0 <= v <= 1 for v in metrics["zero_shot"].values())
    state = load_file(str(tmp_path / "clip" / "open_clip_model.safetensors"))
    assert all(str(v.dtype) == "torch.float16" for v in state.values())
    config_json = json.loads((tmp_path / "clip" / "open_clip_config.json").read_text())
    assert config_json["model_cfg"]["vision_cfg"]["image_size"] == 64

    import torch

    from clipgen.perceptor import load_perceptor

    perceptor = load_perceptor((str(tmp_path / "clip"),), torch.device("cpu"))
    assert perceptor.input_sizes == (64,)
    embeds = perceptor.models[0].encode_text(["a red star on a blue background"])
    assert embeds.shape == (1, 128)


def test_train_judge_few_steps_and_reload(tmp_path):
    from clipgen.toy.judge import HEADS, JudgeConfig, load_judge, read_attributes, train_judge
    from clipgen.toy.world import sample

    metrics = train_judge(JudgeConfig(steps=2, batch_size=8, eval_images=8, threads=1), out_dir=tmp_path)
    assert set(metrics["accuracy"]) == set(HEADS)
    judge = load_judge(tmp_path / "judge.safetensors")
    seen = read_attributes(judge, [sample(1).image, sample(2).image])
    assert len(seen) == 2
    for attributes in seen:
        assert set(attributes) == set(HEADS)
        assert all(attributes[name] in HEADS[name] for name in HEADS)


def test_toy_cli_judge_reports_attributes(run_cli, tmp_path):
    import json as _json

    from clipgen.toy.judge import JudgeConfig, train_judge
    from clipgen.toy.world import Label, sample

    train_judge(JudgeConfig(steps=1, batch_size=8, eval_images=4, threads=1), out_dir=tmp_path)
    image = tmp_path / "star.png"
    sample(3, label=Label("red", "star", "blue", "large", 1, "center")).image.save(image)
    code, out, err = run_cli(["toy", "judge", image, "--prompt", "a red star on a blue background",
                              "--judge", tmp_path / "judge.safetensors", "--json"])
    assert code == 0, err
    attributes = _json.loads(out)["attributes"]
    assert set(attributes) == {"colour", "shape", "background", "count"}
    assert attributes["colour"]["prompt"] == "red" and isinstance(attributes["colour"]["ok"], bool)
    code, _, err = run_cli(["toy", "judge", image, "--prompt", "a red star",
                            "--judge", tmp_path / "missing.safetensors"])
    assert code == 2 and "clipgen toy train-judge" in err
