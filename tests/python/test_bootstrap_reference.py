"""Prunelab's paired bootstrap (`prunelab wer --baseline`) against a NumPy implementation.

The Python side is independent of the Rust code: it scores utterances with its own word-level
Levenshtein distance, regenerates the resample draws from the documented recipe (SplitMix64
seeded with the bootstrap seed; for each resample in order, one `below(n)` per utterance, with
utterances in the order of their ids), and takes percentiles with NumPy's default (linear)
interpolation. Tolerance: 1e-9 WER points (both sides sum integers and divide once).
"""

import json
import os
import subprocess
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
BINARY = Path(os.environ.get("PRUNELAB_BIN", ROOT / "target" / "debug" / "prunelab"))
MASK = (1 << 64) - 1
TOLERANCE = 1e-9


class SplitMix64:
    def __init__(self, seed):
        self.state = seed & MASK

    def next_u64(self):
        self.state = (self.state + 0x9E3779B97F4A7C15) & MASK
        z = self.state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
        return z ^ (z >> 31)

    def below(self, n):
        return (self.next_u64() * n) >> 64


def word_errors(reference, hypothesis):
    r, h = reference.split(), hypothesis.split()
    previous = list(range(len(h) + 1))
    for i, rw in enumerate(r, 1):
        current = [i] + [0] * len(h)
        for j, hw in enumerate(h, 1):
            current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (rw != hw))
        previous = current
    return previous[-1]


def corrupt(words, rng, rate, vocabulary):
    out = []
    for w in words:
        roll = rng.random()
        if roll < rate / 3:
            continue  # deletion
        if roll < 2 * rate / 3:
            out.append(vocabulary[rng.integers(len(vocabulary))])  # substitution
        else:
            out.append(w)
        if rng.random() < rate / 3:
            out.append(vocabulary[rng.integers(len(vocabulary))])  # insertion
    return out


def write(path, lines):
    path.write_text("".join(f"{uid} {' '.join(words)}\n" for uid, words in lines))


def run_wer(reference, hypothesis, baseline, resamples, seed):
    out = subprocess.run(
        [str(BINARY), "wer", str(reference), str(hypothesis), "--baseline", str(baseline),
         "--resamples", str(resamples), "--bootstrap-seed", str(seed), "--json"],
        capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def test_paired_bootstrap_matches_numpy(tmp_path):
    rng = np.random.default_rng(5)
    vocabulary = ["RED", "CAT", "SAW", "THE", "A", "DOG", "RAN", "HOUSE", "NEAR", "SLOWLY", "TWO", "BIRDS"]
    references = []
    for i in range(60):
        words = [vocabulary[k] for k in rng.integers(len(vocabulary), size=rng.integers(2, 13))]
        references.append((f"utt-{i:03d}", words))
    system = [(uid, corrupt(w, rng, 0.25, vocabulary)) for uid, w in references]
    baseline = [(uid, corrupt(w, rng, 0.15, vocabulary)) for uid, w in references]
    for name, lines in [("ref", references), ("sys", system), ("base", baseline)]:
        write(tmp_path / f"{name}.txt", lines)
    resamples, seed = 500, 11
    got = run_wer(tmp_path / "ref.txt", tmp_path / "sys.txt", tmp_path / "base.txt", resamples, seed)

    order = sorted(range(len(references)), key=lambda i: references[i][0])
    words = np.array([len(references[i][1]) for i in order])
    sys_errors = np.array([word_errors(" ".join(references[i][1]), " ".join(system[i][1])) for i in order])
    base_errors = np.array([word_errors(" ".join(references[i][1]), " ".join(baseline[i][1])) for i in order])

    gen = SplitMix64(seed)
    n = len(order)
    draws = np.array([[gen.below(n) for _ in range(n)] for _ in range(resamples)])
    sys_wers = 100.0 * sys_errors[draws].sum(axis=1) / words[draws].sum(axis=1)
    base_wers = 100.0 * base_errors[draws].sum(axis=1) / words[draws].sum(axis=1)
    differences = sys_wers - base_wers

    def close(a, b):
        assert abs(a - b) <= TOLERANCE, f"{a} != {b}"

    close(got["wer"], 100.0 * sys_errors.sum() / words.sum())
    close(got["estimate"]["interval"]["low"], np.percentile(sys_wers, 2.5))
    close(got["estimate"]["interval"]["high"], np.percentile(sys_wers, 97.5))
    close(got["baseline"]["wer"], 100.0 * base_errors.sum() / words.sum())
    close(got["baseline"]["interval"]["low"], np.percentile(base_wers, 2.5))
    close(got["difference"]["difference"], got["wer"] - got["baseline"]["wer"])
    close(got["difference"]["interval"]["low"], np.percentile(differences, 2.5))
    close(got["difference"]["interval"]["high"], np.percentile(differences, 97.5))
    close(got["difference"]["worse_fraction"], np.mean(differences > 0))
    # The corruption rates differ enough that the test means something: the system is worse.
    assert got["difference"]["worse_fraction"] > 0.9


def test_identical_hypotheses_differ_by_zero_with_zero_width(tmp_path):
    lines = [(f"u{i}", ["THE", "CAT"] * (i % 3 + 1)) for i in range(10)]
    hyp = [(uid, w[:-1]) for uid, w in lines]
    write(tmp_path / "ref.txt", lines)
    write(tmp_path / "hyp.txt", hyp)
    got = run_wer(tmp_path / "ref.txt", tmp_path / "hyp.txt", tmp_path / "hyp.txt", 200, 0)
    assert got["difference"]["difference"] == 0.0
    assert got["difference"]["interval"] == {"low": 0.0, "high": 0.0}
    assert got["difference"]["worse_fraction"] == 0.0
