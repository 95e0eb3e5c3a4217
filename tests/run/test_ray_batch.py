"""Batches on a real local Ray cluster (two 1-CPU workers on this machine): the same files
as a serial batch, and a worker killed under a prompt costs only that prompt's steps since
its last state.pt."""

import threading
import time
from pathlib import Path

import pytest
import torch
from PIL import Image

ray = pytest.importorskip("ray", reason="needs the ray extra: pip install 'clipgen[ray]'")

import clipgen  # noqa: E402
from clipgen.outputs.run_record import read_record  # noqa: E402
from clipgen.run.batch import parse_batch_text, run_batch, settings_for  # noqa: E402
from clipgen.run.ray_batch import RayEvents, RayOptions, run_batch_on_ray  # noqa: E402

pytestmark = pytest.mark.slow

PROMPTS = ["a red apple", "a blue sky | seed=5", "a green hill", "a yellow star", "a black cat | seed=9",
           "a white cloud"]
# About 1.5 s a prompt at one thread: a kill at the first state.pt (step 5) lands mid-prompt.
SETTINGS = {"size": "32x32", "steps": 60, "generator": "pixels", "device": "cpu", "seed": 1, "offline": True}
#: Fails inside its worker (no VQGAN weights offline): reported once, never retried.
FAILS_IN_WORKER = "a grey stone | generator=vqgan"
ASSIGN = ["cutn=2", "save_every=0", "checkpoint_every=5"]


@pytest.fixture(scope="module")
def cluster():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def serial(tiny_clip, tmp_path_factory):
    """The same batch run serially in this process, at the workers' one thread."""
    out = tmp_path_factory.mktemp("serial")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        outcomes = run_batch(parse_batch_text("\n".join(PROMPTS)), resolver(tiny_clip, out), out)
    finally:
        torch.set_num_threads(threads)
    assert [o.status for o in outcomes] == ["finished"] * len(PROMPTS)
    return {o.item.index: final_image(o.folder) for o in outcomes}


def resolver(tiny_clip, out):
    return settings_for(None, {**SETTINGS, "clip": [tiny_clip], "out": str(out)}, ASSIGN)


def final_image(folder: Path) -> bytes:
    """The final image's pixels (its PNG metadata names the output folder, which differs)."""
    with Image.open(read_record(folder)["files"]["image"]) as image:
        return image.convert("RGB").tobytes()


def test_two_workers_make_the_serial_batch_byte_for_byte(cluster, serial, tiny_clip, tmp_path):
    items = parse_batch_text("\n".join([*PROMPTS, FAILS_IN_WORKER]))
    started = []
    outcomes = run_batch_on_ray(items, resolver(tiny_clip, tmp_path), tmp_path, options=RayOptions(workers=2),
                                events=RayEvents(on_start=lambda item, worker: started.append((item.index, worker))))
    assert [o.item.index for o in outcomes] == list(range(len(items)))
    assert [o.status for o in outcomes] == ["finished"] * len(PROMPTS) + ["failed"]
    failed = outcomes[-1]
    assert failed.attempts == 1 and "vqgan" in failed.error.lower()  # its own failure: not retried
    assert sorted(i for i, _ in started) == list(range(len(items)))  # each prompt sent once
    assert len({worker for _, worker in started}) == 2  # both workers took prompts
    assert {o.item.index: final_image(o.folder) for o in outcomes[:-1]} == serial
    assert (tmp_path / "index.html").read_text().count("<img") == len(PROMPTS)



def test_a_killed_worker_costs_only_its_prompt_since_the_last_state(cluster, serial, tiny_clip, tmp_path):
    items = parse_batch_text("\n".join(PROMPTS))
    victim = 2
    killed = {}

    def kill_when_saved(worker):
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            states = list(tmp_path.glob(f"{victim:04d}-*/state.pt"))
            if states:
                folder = states[0].parent
                ray.kill(ray.get_actor(worker))
                killed.update(folder=folder, record=read_record(folder))
                return
            time.sleep(0.01)

    def on_start(item, worker):
        if item.index == victim and not killed:
            threading.Thread(target=kill_when_saved, args=(worker,), daemon=True).start()

    retried = []
    outcomes = run_batch_on_ray(items, resolver(tiny_clip, tmp_path), tmp_path, options=RayOptions(workers=2),
                                events=RayEvents(on_start=on_start, on_retry=lambda item, why: retried.append(item.index)))
    assert killed, "the prompt finished before its worker could be killed"
    assert killed["record"].get("status") != "finished"  # the kill landed mid-prompt
    assert retried == [victim]
    assert [o.item.index for o in outcomes] == list(range(len(PROMPTS)))  # each prompt ends once
    assert [o.status for o in outcomes] == ["finished"] * len(PROMPTS), [o.error for o in outcomes]
    redone = outcomes[victim]
    assert redone.attempts == 2 and redone.folder == killed["folder"]  # resumed where the dead worker left it
    assert len(list(tmp_path.glob(f"{victim:04d}-*"))) == 1
    # Resuming is exact: the image is the one the uninterrupted serial batch made.
    assert {o.item.index: final_image(o.folder) for o in outcomes} == serial


def test_ctrl_c_on_the_driver_saves_the_running_prompts_and_resume_finishes(cluster, serial, tiny_clip, tmp_path):
    items = parse_batch_text("\n".join(PROMPTS))

    def interrupt_when_the_third_starts(item, worker):
        # Ctrl-C as the third prompt is handed out: one prompt has finished (it freed a worker)
        # and the third has all its steps ahead, so it is stopped whatever the other is doing.
        # Interrupting on the first outcome raced: the first two prompts start and end together.
        if item.index == 2:
            raise KeyboardInterrupt

    stopped = run_batch_on_ray(items, resolver(tiny_clip, tmp_path), tmp_path, options=RayOptions(workers=2),
                               events=RayEvents(on_start=interrupt_when_the_third_starts))
    statuses = {o.item.index: o.status for o in stopped}
    assert statuses[2] == "interrupted" and "finished" in (statuses[0], statuses[1])
    statuses = list(statuses.values())
    assert len(stopped) < len(PROMPTS)  # the prompts never started got no outcome
    for outcome in stopped:
        if outcome.status == "interrupted":  # stopped after a step, its state saved
            assert (outcome.folder / "state.pt").is_file()
            assert read_record(outcome.folder)["status"] == "interrupted"

    # The rest through the Python API, which uses the cluster this process already joined.
    finished = clipgen.batch(PROMPTS, out=tmp_path, resume=True, ray="auto", workers=2, clip=[tiny_clip],
                             set=ASSIGN, **SETTINGS)
    assert [o.status for o in finished].count("skipped") == statuses.count("finished")
    assert {o.status for o in finished} == {"skipped", "finished"}
    assert {o.item.index: final_image(o.folder) for o in finished} == serial
    assert len([p for p in tmp_path.iterdir() if p.is_dir()]) == len(PROMPTS)  # nothing was redone aside
