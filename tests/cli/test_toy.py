"""`clipgen toy` commands report through the CLI's shared progress bar."""

import json


def test_toy_training_reports_through_the_shared_progress_bar(capsys):
    from clipgen.cli.toy import _train

    def train(on_step):
        for step in (1, 2, 3):
            on_step(step, 0.5 / step)
        return {"steps": 3}

    _train("train-test", 3, train)
    captured = capsys.readouterr()
    assert json.loads(captured.out) == {"steps": 3}
    assert "train-test" in captured.err and "3/3" in captured.err
