"""`prunelab wer` against jiwer (PyPI) on random transcripts, under each of its four text rules.

The transcripts mix what a scorer can silently get wrong: digits and words with digits, Latin,
Cyrillic, Greek (with a final sigma), CJK and Arabic words and Arabic-Indic digits, case
variants, the same accented word composed and decomposed, punctuation alone and inside words,
and symbols. The Python side prepares text with its own tools: `unicodedata.normalize("NFC")`,
then jiwer's `RemovePunctuation` (Unicode P* categories) and `ToLowerCase` where the rule asks,
and jiwer's Levenshtein alignment. Each utterance's error count (S + D + I) and reference
length must be equal, and so the WER (to 1e-9). How the errors split into S, D and I is not
compared: an alignment with equal cost may trade one substitution for a deletion and an
insertion, and the two tools break such ties differently.

Run: PRUNELAB_BIN=target/debug/prunelab python3 -m pytest tests/python/test_wer_jiwer.py
"""

import json
import os
import random
import subprocess
import unicodedata
from pathlib import Path

import jiwer
import pytest

ROOT = Path(__file__).resolve().parents[2]
BINARY = Path(os.environ.get("PRUNELAB_BIN", ROOT / "target" / "debug" / "prunelab"))

# Words that survive every rule (letters of several scripts, digits), so that no reference
# becomes empty; jiwer refuses an empty reference.
PLAIN = ["the", "The", "THE", "cat", "Cat", "w17", "w72", "10", "3", "٣٤", "Москва", "москва",
         "ΣΟΦΟΣ", "σοφος", "東京", "大阪", "سلام", "café", "cafe\u0301", "CAFÉ", "naïve", "nai\u0308ve"]
# Words that punctuation removal changes or deletes.
MARKED = ["co-op", "coop", "it's", "its", "ok?", "OK", "A.B.", "AB", "—", "«", "»", "¿", ",",
          "10:30", "1030", "$5", "+", "€", "x_y"]
POOL = PLAIN + MARKED
RULES = {
    "as written": [],
    "fold case": ["--fold-case"],
    "strip punctuation": ["--strip-punctuation"],
    "both": ["--fold-case", "--strip-punctuation"],
}


def variant(word):
    """The same word written another way: composed/decomposed where it has accents, else in
    the other case; a scorer that gets either wrong counts an error that is not there, or
    misses one."""
    composed, decomposed = unicodedata.normalize("NFC", word), unicodedata.normalize("NFD", word)
    if composed != decomposed:
        return decomposed if word == composed else composed
    return word.lower() if word != word.lower() else word.upper()


def transcripts(seed, count=60):
    rng = random.Random(seed)
    references, hypotheses = [], []
    for _ in range(count):
        words = [rng.choice(PLAIN)] + [rng.choice(POOL) for _ in range(rng.randrange(0, 10))]
        rng.shuffle(words)
        hypothesis = []
        for word in words:
            roll = rng.random()
            if roll < 0.1:
                continue  # deleted
            hypothesis.append(variant(word) if roll < 0.25 else rng.choice(POOL) if roll < 0.4 else word)
            if rng.random() < 0.08:
                hypothesis.append(rng.choice(POOL))  # inserted
        references.append(" ".join(words))
        hypotheses.append(" ".join(hypothesis))
    return references, hypotheses


def jiwer_errors(reference, hypothesis, flags):
    steps = []
    if "--strip-punctuation" in flags:
        steps.append(jiwer.RemovePunctuation())
    if "--fold-case" in flags:
        steps.append(jiwer.ToLowerCase())
    steps += [jiwer.RemoveMultipleSpaces(), jiwer.Strip(), jiwer.ReduceToListOfListOfWords()]
    transform = jiwer.Compose(steps)
    nfc = lambda text: unicodedata.normalize("NFC", text)
    out = jiwer.process_words(nfc(reference), nfc(hypothesis), reference_transform=transform,
                              hypothesis_transform=transform)
    return out.substitutions + out.deletions + out.insertions, out.hits + out.substitutions + out.deletions


@pytest.mark.parametrize("seed", [1, 2])
@pytest.mark.parametrize("rule", sorted(RULES))
def test_errors_match_jiwer(tmp_path, seed, rule):
    if not BINARY.exists():
        pytest.skip(f"{BINARY} not built")
    references, hypotheses = transcripts(seed)
    ids = [f"utt-{i:03d}" for i in range(len(references))]
    # A byte-order mark and a decomposed id must not change which utterances pair up.
    (tmp_path / "ref.txt").write_text("\ufeff" + "".join(f"{i} {r}\n" for i, r in zip(ids, references)))
    (tmp_path / "hyp.txt").write_text("".join(f"{i} {h}\n" for i, h in zip(ids, hypotheses)))
    out = subprocess.run([BINARY, "--quiet", "wer", tmp_path / "ref.txt", tmp_path / "hyp.txt", "--json",
                          "--resamples", "10", *RULES[rule]], capture_output=True, text=True, check=True)
    report = json.loads(out.stdout)
    scored = {u["id"]: u["words"] for u in report["report"]["utterances"]}
    assert sorted(scored) == ids
    total_errors = total_words = 0
    for utt, reference, hypothesis in zip(ids, references, hypotheses):
        errors, words = jiwer_errors(reference, hypothesis, RULES[rule])
        ours = scored[utt]
        assert (ours["substitutions"] + ours["deletions"] + ours["insertions"], ours["reference_len"]) == \
            (errors, words), f"{utt}: {reference!r} / {hypothesis!r}"
        total_errors += errors
        total_words += words
    assert abs(report["wer"] - 100.0 * total_errors / total_words) < 1e-9
