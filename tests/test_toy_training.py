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
