"""`clipgen score` reads the offline rule at the edge."""

from PIL import Image


def test_score_reads_the_one_offline_rule(run_cli, tmp_path, monkeypatch):
    import clipgen.guidance.perceptor
    from clipgen.errors import ModelError

    told = []

    def load(specs, device, offline=False, **kwargs):
        told.append(offline)
        raise ModelError("stop here")

    monkeypatch.setattr(clipgen.guidance.perceptor, "load_perceptor", load)
    picture = tmp_path / "in.png"
    Image.new("RGB", (8, 8)).save(picture)
    for name in ("CLIPGEN_OFFLINE", "HF_HUB_OFFLINE"):
        monkeypatch.delenv(name, raising=False)
    assert run_cli(["score", picture, "-p", "x"])[0] == 2
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert run_cli(["score", picture, "-p", "x"])[0] == 2
    assert run_cli(["classify", picture, "--labels", "a,b"])[0] == 2
    assert told == [False, True, True]
