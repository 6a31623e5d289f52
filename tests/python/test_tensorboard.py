"""The TensorBoard scalars `prunelab train` writes, read back with TensorBoard's own reader
(PyPI `tensorboard`, `EventAccumulator`) and checked against the run's metrics.jsonl.

A four-step adaptive-dropout run on a 16-utterance fixture corpus (a few seconds): every step's
loss and learning rate, every evaluation's WER, and each snapshot's retention percentiles per
site kind must be there. Loss and WER are stored as float32, so they are compared at float32
precision (relative 1e-6).
"""

import json
import os
import subprocess
from pathlib import Path

import numpy as np
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

ROOT = Path(__file__).resolve().parents[2]
BINARY = Path(os.environ.get("PRUNELAB_BIN", ROOT / "target" / "debug" / "prunelab"))
SITES = ["ffn1.hidden", "attn.query", "attn.value", "conv.input", "ffn2.hidden"]


def prunelab(*args):
    return subprocess.run([str(BINARY), *args], capture_output=True, text=True, check=True)


def test_scalars_match_the_metrics_log(tmp_path):
    corpus, run = tmp_path / "corpus", tmp_path / "run"
    prunelab("corpus", "fixture", "--out", str(corpus), "--subsets", "train", "dev", "test", "--per-split", "16")
    prunelab("train", "--corpus", str(corpus), "--out", str(run), "--steps", "4", "--device", "cpu",
             "--method", "adaptive-dropout", "--eval-every", "2", "--snapshot-every", "2")
    events = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    steps = [e for e in events if e["event"] == "step"]
    evals = [e for e in events if e["event"] == "eval" and e["split"] == "dev"]
    assert len(steps) == 4 and len(evals) == 1  # at step 2; the final scores go to summary.json

    tb = EventAccumulator(str(run / "tensorboard"), size_guidance={"scalars": 0})
    tb.Reload()
    tags = set(tb.Tags()["scalars"])

    def series(tag):
        return [(s.step, s.value) for s in tb.Scalars(tag)]

    loss = series("train/loss")
    assert [s for s, _ in loss] == [e["step"] + 1 for e in steps]
    np.testing.assert_allclose([v for _, v in loss], [e["loss"] for e in steps], rtol=1e-6)
    np.testing.assert_allclose([v for _, v in series("train/lr")], [e["lr"] for e in steps], rtol=1e-6)
    np.testing.assert_allclose([v for _, v in series("train/penalty")], [e["penalty"] for e in steps], rtol=1e-6)
    wer = series("dev/wer")
    assert [s for s, _ in wer] == [e["step"] for e in evals]
    np.testing.assert_allclose([v for _, v in wer], [e["wer"] for e in evals], rtol=1e-6)

    for site in SITES:
        p10, p50, p90 = (series(f"retention/{site}/{q}") for q in ("p10", "p50", "p90"))
        assert [s for s, _ in p50] == [0, 2, 4], f"{site}: one point per snapshot (before training, then every 2 steps)"
        for (_, a), (_, b), (_, c) in zip(p10, p50, p90):
            assert 0.0 <= a <= b <= c <= 1.0, (site, a, b, c)
    assert "train/expected_sparsity" not in tags, "adaptive dropout has no expected sparsity"


def test_a_resumed_run_has_each_step_once(tmp_path):
    """Ctrl-C mid-run, then --resume: the event file is rebuilt from the trace cut back to the
    checkpoint, so TensorBoard sees steps 1..N once each and the same losses as metrics.jsonl."""
    import signal
    import time

    corpus, run = tmp_path / "corpus", tmp_path / "run"
    prunelab("corpus", "fixture", "--out", str(corpus), "--subsets", "train", "dev", "test", "--per-split", "16")
    process = subprocess.Popen(
        [str(BINARY), "train", "--corpus", str(corpus), "--out", str(run), "--steps", "16", "--device", "cpu",
         "--method", "l0", "--eval-every", "0", "--snapshot-every", "5", "--checkpoint-every", "4"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    metrics = run / "metrics.jsonl"
    deadline = time.monotonic() + 600  # generous: a loaded machine may take minutes to start
    while time.monotonic() < deadline and process.poll() is None:
        if metrics.exists() and len(metrics.read_text().splitlines()) >= 6:
            break
        time.sleep(0.2)
    process.send_signal(signal.SIGINT)
    assert process.wait(timeout=600) in (0, 130)
    prunelab("train", "--resume", str(run))

    steps = [json.loads(line) for line in metrics.read_text().splitlines()]
    steps = [e for e in steps if e["event"] == "step"]
    tb = EventAccumulator(str(run / "tensorboard"), size_guidance={"scalars": 0})
    tb.Reload()
    loss = [(s.step, s.value) for s in tb.Scalars("train/loss")]
    assert [s for s, _ in loss] == list(range(1, 17))
    np.testing.assert_allclose([v for _, v in loss], [e["loss"] for e in steps], rtol=1e-6)
    assert [s.step for s in tb.Scalars("train/expected_sparsity")] == list(range(1, 17))
