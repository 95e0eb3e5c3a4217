"""The toy training commands run end to end on tiny settings (not the full training)."""

import json

import pytest
from safetensors.torch import load_file

from clipgen.toy.train_clip import TOWERS, TrainConfig, group_labels, train


@pytest.mark.slow
@pytest.mark.parametrize("tower", sorted(TOWERS))
def test_train_clip_few_steps_saves_a_loadable_local_dir(tmp_path, tower):
    losses = []
    config = TrainConfig(steps=3, batch_size=16, group_size=4, pool_batches=2, warmup=1,
                         eval_images=4, threads=1, tower=tower)
    metrics = train(config, out_dir=tmp_path / "clip", on_step=lambda step, loss: losses.append(loss))
    assert len(losses) == 3 and all(l == l and l > 0 for l in losses)
    assert set(metrics["zero_shot"]) == {"colour", "shape", "background", "position", "size"}
    assert all(0 <= v <= 1 for v in metrics["zero_shot"].values())
    state = load_file(str(tmp_path / "clip" / "open_clip_model.safetensors"))
    assert all(str(v.dtype) == "torch.float16" for v in state.values())
    config_json = json.loads((tmp_path / "clip" / "open_clip_config.json").read_text())
    assert config_json["model_cfg"]["vision_cfg"] == TOWERS[tower]

    import torch

    from clipgen.guidance.perceptor import load_perceptor

    perceptor = load_perceptor((str(tmp_path / "clip"),), torch.device("cpu"))
    assert perceptor.input_sizes == (64,)
    embeds = perceptor.models[0].encode_text(["a red star on a blue background"])
    assert embeds.shape == (1, 128)


def test_cli_defaults_and_shipped_model_record_the_same_training_settings():
    import inspect
    from dataclasses import asdict

    from clipgen.cli.toy import train_clip_command
    from clipgen.weights.builtin import get

    cli = {name: p.default for name, p in inspect.signature(train_clip_command).parameters.items()}
    defaults = TrainConfig()
    assert {k: cli[k] for k in ("steps", "batch_size", "lr", "threads", "seed", "tower")} == {
        k: getattr(defaults, k) for k in ("steps", "batch_size", "lr", "threads", "seed", "tower")}
    assert cli["minutes"] * 60 == defaults.max_seconds
    shipped = json.loads((get("clip", "toy").folder / "training.json").read_text())
    assert shipped["config"] == asdict(defaults)


def test_hard_negative_groups_share_colour_and_background_and_hold_no_duplicates():
    import random
    from collections import Counter

    rng, kinds = random.Random(3), Counter()
    for _ in range(400):
        labels = group_labels(rng, 8)
        assert len({(l.colour, l.background) for l in labels}) == 1
        assert len(set(labels)) == len(labels) >= 6
        shapes, positions = {l.shape for l in labels}, {l.position for l in labels}
        if len(positions) == 1 and len(shapes) > 1:
            kinds["shape"] += 1
            kinds["small"] += labels[0].size == "small"
    # Shape-only groups are the most common kind, and mostly small shapes (the hard case).
    assert 0.4 < kinds["shape"] / 400 < 0.6
    assert kinds["small"] / kinds["shape"] > 0.7


def test_toy_cli_train_clip_rejects_an_unknown_tower(run_cli, tmp_path):
    code, out, err = run_cli(["toy", "train-clip", "--out", tmp_path / "clip", "--tower", "vgg"])
    assert code == 2
    assert "unknown image tower 'vgg'" in err and "resnet" in err
    assert not (tmp_path / "clip").exists()


@pytest.mark.slow
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


@pytest.mark.slow
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


@pytest.mark.slow
@pytest.mark.parametrize("downsample, codes, tokens", [(4, 512, 16), (8, 1024, 8)])
def test_train_vqgan_few_steps_loads_with_the_generators_loader(tmp_path, tiny_clip, downsample, codes, tokens):
    import torch

    from clipgen.generators.base import GeneratorContext
    from clipgen.generators.vqgan.generator import VQGANGenerator, VQGANOptions
    from clipgen.toy.train_vqgan import VQTrainConfig, train

    losses = []
    config = VQTrainConfig(steps=3, batch_size=4, pool_images=8, warmup=1, restart_every=2, eval_images=4,
                           threads=1, downsample=downsample, codes=codes)
    metrics = train(config, out_dir=tmp_path / "vqgan", on_step=lambda step, loss: losses.append(loss))
    assert len(losses) == 3 and all(l == l and l > 0 for l in losses)
    assert metrics["steps"] == 3 and metrics["psnr_db"] > 0
    # The real on-disk format: yaml + Lightning-layout ckpt, read by the normal loader.
    options = VQGANOptions(config=str(tmp_path / "vqgan" / "model.yaml"),
                           checkpoint=str(tmp_path / "vqgan" / "last.ckpt"))
    generator = VQGANGenerator((64, 64), options, GeneratorContext(device=torch.device("cpu")))
    assert generator.tokens_hw == (tokens, tokens) and generator.codebook.shape[0] == codes
    image = generator()
    image = image.detach()
    assert image.shape == (1, 3, 64, 64) and 0 <= float(image.min()) and float(image.max()) <= 1
    checkpoint = torch.load(tmp_path / "vqgan" / "last.ckpt", weights_only=True)
    assert "state_dict" in checkpoint and "global_step" in checkpoint


def test_train_vqgan_refuses_a_grid_it_cannot_build(run_cli, tmp_path):
    code, _, err = run_cli(["toy", "train-vqgan", "--out", str(tmp_path / "v"), "--downsample", "5"])
    assert code == 2 and "--downsample 5" in err and "4, 8, 16" in err
    assert not (tmp_path / "v").exists()


def test_dead_codes_move_onto_encoder_outputs():
    import random

    import torch

    from clipgen.toy.train_vqgan import N_EMBED, build_model, restart_dead_codes

    model = build_model()
    usage = torch.ones(N_EMBED)
    usage[[3, 7]] = 0
    latents = torch.randn(2, model.codebook.shape[1], 4, 4)
    before = model.codebook.detach().clone()
    assert restart_dead_codes(model, usage, latents, random.Random(0)) == 2
    changed = (model.codebook != before).any(dim=1).nonzero().flatten().tolist()
    assert changed == [3, 7]
    flat = latents.movedim(1, -1).reshape(-1, latents.shape[1])
    # each restarted code sits next to one of the latents
    assert torch.cdist(model.codebook[[3, 7]], flat).min(dim=1).values.max() < 0.2


def test_train_prior_few_steps_saves_a_prior_that_samples(tmp_path):
    import torch

    from clipgen.priors.base import PriorContext
    from clipgen.priors.sampling import sample_grids
    from clipgen.priors.toy.prior import ToyPrior
    from clipgen.toy.train_prior import PriorTrainConfig, train
    from clipgen.weights import builtin

    vqgan = builtin.verified_folder(builtin.get("vqgan", "toy"))
    losses = []
    config = PriorTrainConfig(vqgan=str(vqgan), steps=3, batch_size=4, initial_pool=8, grow_per_step=2,
                              width=32, layers=1, heads=2, warmup=1, threads=1, eval_images=4)
    metrics = train(config, out_dir=tmp_path, on_step=lambda step, loss: losses.append(loss))
    # 512 codes: an untrained prior's cross-entropy starts near ln 512 ≈ 6.2.
    assert len(losses) == 3 and all(5.0 < loss < 7.5 for loss in losses)
    assert metrics["pool_images"] == 8 + 3 * 2 and metrics["sequences"] == 12
    assert 0 < metrics["codes_used"] <= 512 and metrics["code_entropy"] > 0
    prior = ToyPrior.from_file(tmp_path / "prior.safetensors", PriorContext(torch.device("cpu")))
    assert prior.grid == (16, 16) and prior.vocab_size == 512
    grids = sample_grids(prior, "a red star", 2, seed=0)
    assert grids.shape == (2, 16, 16) and int(grids.max()) < 512


def test_rate_cost_moves_near_ties_onto_common_codes_and_leaves_clear_winners():
    import torch

    from clipgen.generators.vqgan.quantise import nearest_codes, rate_costs

    codebook = torch.tensor([[0.0, 0.0], [0.05, 0.0], [1.0, 1.0]])
    # 90 latents at code 0, 10 slightly nearer code 1 (a near-synonym), 20 far off at code 2.
    latents = torch.cat([torch.zeros(90, 2), torch.tensor([[0.03, 0.0]]).repeat(10, 1),
                         torch.ones(20, 2)]).T.reshape(1, 2, 120, 1)
    plain = nearest_codes(latents, codebook).flatten()
    assert torch.bincount(plain, minlength=3).tolist() == [90, 10, 20]
    assert rate_costs(latents, codebook, rate=0.0).abs().sum() == 0  # no rate: plain nearest codes
    costs = rate_costs(latents, codebook, rate=0.01)
    assert costs[1] > costs[0]  # the rare code costs more
    penalised = nearest_codes(latents, codebook, costs).flatten()
    assert torch.bincount(penalised, minlength=3).tolist() == [100, 0, 20]
