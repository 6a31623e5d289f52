#!/usr/bin/env python3
"""Replays every case of issue 33's table of hostile input against the `prunelab` binary.

Each case is one or two invocations and what must come of them: a clear error that names the
file or flag (a substring of stderr), or a correct result (checked here). Every invocation is
also held to the issue's limits: no panic, at most 60 s, at most 1 GiB resident, and the files of
another run unchanged. The page's cases (the lab in the browser) are in tests/browser.

    python3 trainer-native/tests/hostile_replay.py [--bin target/debug/prunelab]

Prints one line per case and a summary; exits 1 if any case failed. Standard library only.

Resident memory is the kernel's peak for each child (`wait4`), which counts the size of this
Python process at the fork as well: an upper bound. One case of the table is not replayed: a
chart written to a full disk (it needs a full filesystem; charts are drawn to a hidden temporary
and renamed, trainer-native/src/atomic.rs).
"""

import argparse
import hashlib
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
STATIC = ROOT / "static"
TRAINED = STATIC / "trained-tiny.plc"
TONE = ROOT / "tests" / "data" / "tone.flac"
DEADLINE_S = 60
RESIDENT_LIMIT_KIB = 1 << 20  # 1 GiB


class Outcome:
    def __init__(self, code, stdout, stderr, seconds, resident_kib):
        self.code, self.stdout, self.stderr = code, stdout, stderr
        self.seconds, self.resident_kib = seconds, resident_kib


def run(binary, args, cwd):
    """Runs prunelab with `args`, killing it at the deadline; returns its Outcome."""
    out, err = tempfile.TemporaryFile(), tempfile.TemporaryFile()
    started = time.monotonic()
    child = subprocess.Popen([str(binary), *map(str, args)], cwd=cwd, stdout=out, stderr=err, stdin=subprocess.DEVNULL)
    status, usage = None, None
    while status is None:
        pid, wait_status, rusage = os.wait4(child.pid, os.WNOHANG)
        if pid:
            status, usage = wait_status, rusage
            break
        if time.monotonic() - started > DEADLINE_S:
            child.kill()
            _, status, usage = os.wait4(child.pid, 0)
            status = None
            break
        time.sleep(0.02)
    child.returncode = 0  # reaped here; keep Popen from waiting again
    seconds = time.monotonic() - started
    out.seek(0)
    err.seek(0)
    code = os.waitstatus_to_exitcode(status) if status is not None else "killed at the deadline"
    return Outcome(code, out.read().decode(errors="replace"), err.read().decode(errors="replace"), seconds, usage.ru_maxrss)


def digest(paths):
    """Content hashes of every file under `paths` (a run's files, to see that none changed)."""
    seen = {}
    for top in paths:
        for path in sorted(Path(top).rglob("*")):
            if path.is_file() and path.name != "run.lock":
                seen[str(path)] = hashlib.sha256(path.read_bytes()).hexdigest()
    return seen


class Replay:
    def __init__(self, binary, work):
        self.binary, self.work = binary, work
        self.results = []
        self.guarded = []  # runs whose files no case may change

    def call(self, args):
        return run(self.binary, args, self.work)

    def case(self, row, name, check):
        """Runs `check` (which returns the invocations it made and a problem or None) under the
        issue's limits, and records the verdict."""
        guarded = list(self.guarded)
        before = digest(guarded)
        try:
            outcomes, problem = check()
        except Exception as e:  # a broken case is a failure, with its reason
            outcomes, problem = [], f"the case itself failed: {e!r}"
        for outcome in outcomes:
            if "panicked" in outcome.stderr:
                problem = problem or f"panicked: {outcome.stderr.strip()[-300:]}"
            if outcome.code == "killed at the deadline":
                problem = problem or f"still running after {DEADLINE_S} s"
            if outcome.resident_kib > RESIDENT_LIMIT_KIB:
                problem = problem or f"{outcome.resident_kib // 1024} MiB resident"
        if digest(guarded) != before:
            problem = problem or "a file of another run changed"
        slowest = max((o.seconds for o in outcomes), default=0.0)
        largest = max((o.resident_kib for o in outcomes), default=0) // 1024
        self.results.append((row, name, problem, slowest, largest))
        verdict = "ok  " if problem is None else "FAIL"
        print(f"{verdict} [{row}] {name} ({slowest:.1f} s, {largest} MiB)" + ("" if problem is None else f"\n     {problem}"), flush=True)

    def refused(self, args, message, code=1):
        """A case whose one invocation must exit with `code` (1; 2 where the flag parser
        refuses a value) and `message` on stderr."""
        outcome = self.call(args)
        if outcome.code != code:
            return [outcome], f"exit {outcome.code}, expected {code}; stderr: {outcome.stderr.strip()[-300:]}"
        if message not in outcome.stderr:
            return [outcome], f"stderr lacks {message!r}: {outcome.stderr.strip()[-300:]}"
        return [outcome], None


def write(path, text_or_bytes):
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text_or_bytes, str):
        path.write_text(text_or_bytes, encoding="utf-8")
    else:
        path.write_bytes(text_or_bytes)
    return path


def wer_json(outcome):
    """The WER (percent) of `prunelab wer --json`'s output."""
    return json.loads(outcome.stdout)["wer"]


def safetensors_entry(data, name):
    """(offset in the file, length) of tensor `name`'s data in safetensors `data`."""
    header_len = struct.unpack("<Q", data[:8])[0]
    entry = json.loads(data[8 : 8 + header_len])[name]
    start, end = entry["data_offsets"]
    return 8 + header_len + start, end - start


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default = os.environ.get("PRUNELAB_BIN", str(ROOT / "target" / "debug" / "prunelab"))
    parser.add_argument("--bin", default=default, help="the prunelab binary (default: $PRUNELAB_BIN or target/debug/prunelab)")
    binary = Path(parser.parse_args().bin).resolve()
    if not binary.is_file():
        sys.exit(f"{binary}: no prunelab binary there; build it with `cargo build` or pass --bin")
    work = Path(tempfile.mkdtemp(prefix="prunelab-hostile-replay-"))
    try:
        replay = Replay(binary, work)
        cases(replay, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    failed = [r for r in replay.results if r[2] is not None]
    print(f"\n{len(replay.results)} cases, {len(failed)} failed; slowest {max(r[3] for r in replay.results):.1f} s, "
          f"largest {max(r[4] for r in replay.results)} MiB resident")
    sys.exit(1 if failed else 0)


def cases(replay, work):
    train = ["train", "--preset", "tiny", "--steps", "2", "--device", "cpu", "--quiet", "--dev-utterances", "2", "--eval-every", "0"]
    # The one training of the replay (the rest is seconds): two runs started together into one
    # directory, of which one is refused; what the other leaves, a finished run with gates, is
    # the run whose files no later case may touch.
    run_dir = work / "run"
    train = [*train, "--method", "adaptive-dropout", "--out", run_dir]

    # --- outputs overwrite other runs ------------------------------------------------------
    def two_trains_together():
        first = subprocess.Popen([str(replay.binary), *map(str, train)], stderr=subprocess.PIPE, stdout=subprocess.DEVNULL)
        # The second starts once the first holds the directory (its lock names its process): a
        # fixed pause lost that race on a loaded machine (session 34: the second took the lock
        # and trained past the deadline).
        lock, since = run_dir / "run.lock", time.monotonic()
        while first.poll() is None and time.monotonic() - since < 10 * DEADLINE_S:
            if lock.is_file() and lock.read_text().strip() == str(first.pid):
                break
            time.sleep(0.05)
        second = replay.call(train)
        # The first is an ordinary short run, not a case under the deadline.
        first_err = first.communicate(timeout=10 * DEADLINE_S)[1].decode()
        outcomes = [second, Outcome(first.returncode, "", first_err, 0.0, 0)]
        # A case killed at its deadline has a text for a code.
        codes = sorted([first.returncode, second.code], key=str)
        losers = [o.stderr for o in outcomes if o.code == 1]
        if codes != [0, 1] or "another prunelab train (process" not in "".join(losers):
            return outcomes, f"exit codes {codes}; the refused one should name the holder: {''.join(losers)[-300:]}"
        if not (run_dir / "checkpoint.plc").is_file():
            return outcomes, "the winner's checkpoint is missing"
        replay.guarded.append(run_dir)
        return outcomes, None

    replay.case("overwrite", "two `train --out D` started together: one is refused naming the other", two_trains_together)
    assert (run_dir / "checkpoint.plc").is_file(), "the later cases need the run"
    replay.case("overwrite", "`fbank --out RUN/checkpoint.plc`", lambda: replay.refused(["fbank", TONE, "--out", run_dir / "checkpoint.plc"], "--overwrite"))
    replay.case("overwrite", "`slim --out OTHER_RUN/checkpoint.plc`", lambda: replay.refused(["slim", TRAINED, "--out", run_dir / "checkpoint.plc"], "--overwrite"))
    replay.case("overwrite", "`sweep --out RUN/summary.json`", lambda: replay.refused(
        ["sweep", "--checkpoint", TRAINED, "--magnitude", "--budgets", "50%", "--out", run_dir / "summary.json", "--device", "cpu"], "--overwrite"))

    # --- memory unbounded ----------------------------------------------------------------
    device_refusal = "is a pipe, device or socket, not a regular file"
    replay.case("memory", "/dev/zero as a checkpoint", lambda: replay.refused(["prune", "--checkpoint", "/dev/zero", "--out", work / "x"], device_refusal))
    replay.case("memory", "/dev/zero as a transcript", lambda: replay.refused(["wer", "/dev/zero", "/dev/zero"], device_refusal))
    replay.case("memory", "/dev/zero as a checksum list", lambda: replay.refused(
        ["data", "download", "librispeech", "--subsets", "dev-clean", "--to", work / "ls", "--checksums", "/dev/zero"], device_refusal))
    sparse = work / "huge.plc"
    with open(sparse, "wb") as f:
        f.truncate(64 << 30)  # 64 GiB of holes: no disk used
    replay.case("memory", "a 64 GiB checkpoint", lambda: replay.refused(["eval", "--checkpoint", sparse], "huge.plc: "))
    tree = work / "tree"
    made = replay.call(["corpus", "fixture", "--out", tree, "--subsets", "train", "dev", "test"])
    assert made.code == 0, made.stderr

    def corpus_item(kind):
        item = next((tree / "dev").rglob("*.flac"))
        item.unlink()
        if kind == "device":
            item.symlink_to("/dev/zero")
        else:
            os.mkfifo(item)
        return replay.refused(["corpus", "pack", "--dir", tree, "--out", work / "pack.plc"], device_refusal)

    replay.case("memory", "/dev/zero as a corpus item", lambda: corpus_item("device"))
    frames = 200_000
    header = f"{{'descr': '<f4', 'fortran_order': False, 'shape': ({frames}, 80), }}"
    header += " " * (63 - (10 + len(header)) % 64) + "\n"
    npy = b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header.encode()
    features = write(work / "long.npy", npy + bytes(frames * 80 * 4))
    replay.case("memory", "`logits` on 200,000 frames", lambda: replay.refused(["logits", "--model", TRAINED, features, "--out", work / "logits"], "long.npy: 200000 frames"))
    replay.case("memory", "`bench --batch 1024 --seconds 600`", lambda: replay.refused(["bench", "--batch", "1024", "--seconds", "600"], "--batch 1024 × --seconds 600"))

    # --- hangs ---------------------------------------------------------------------------
    fifo = work / "fifo.plc"
    os.mkfifo(fifo)
    replay.case("hang", "a FIFO as `prune --checkpoint`", lambda: replay.refused(["prune", "--checkpoint", fifo, "--out", work / "y"], device_refusal))
    shutil.rmtree(tree)
    made = replay.call(["corpus", "fixture", "--out", tree, "--subsets", "train", "dev", "test"])
    assert made.code == 0, made.stderr
    replay.case("hang", "a FIFO as a corpus item of `corpus pack`", lambda: corpus_item("fifo"))

    def eval_fifo_corpus():
        ls = work / "ls"
        made = replay.call(["corpus", "fixture", "--out", ls])
        assert made.code == 0, made.stderr
        item = next((ls / "dev-clean").rglob("*.flac"))
        item.unlink()
        os.mkfifo(item)
        # A LibriSpeech split loses a bad item with a warning naming it, and is scored without it.
        outcome = replay.call(["eval", "--checkpoint", TRAINED, "--librispeech", ls, "--split", "dev", "--subsets", "dev-clean",
                               "--device", "cpu", "--hyp-dir", work / "hyps"])
        if outcome.code != 0:
            return [outcome], f"exit {outcome.code}: {outcome.stderr[-300:]}"
        if f"{item}: {device_refusal}" not in outcome.stderr or "47 utterances" not in outcome.stdout + outcome.stderr:
            return [outcome], f"the FIFO was not skipped by name: {outcome.stderr[-400:]}"
        return [outcome], None

    replay.case("hang", "a FIFO as a .flac of `eval --librispeech`: skipped by name, the rest scored", eval_fifo_corpus)

    # --- scores silently wrong -----------------------------------------------------------
    def scored(reference, hypothesis, expected, *flags):
        ref, hyp = write(work / "ref.txt", reference), write(work / "hyp.txt", hypothesis)
        outcome = replay.call(["wer", ref, hyp, "--json", "--resamples", "10", *flags])
        if outcome.code != 0:
            return [outcome], f"exit {outcome.code}: {outcome.stderr[-300:]}"
        got = wer_json(outcome)
        return [outcome], None if abs(got - expected) < 1e-9 else f"WER {got}, expected {expected}"

    replay.case("score", "digits are words: `u1 w17 w72` against `u1 w43 w38` is 100 %", lambda: scored("u1 w17 w72\n", "u1 w43 w38\n", 100.0))
    replay.case("score", "words of other scripts are scored", lambda: scored("u1 привет мир 世界\n", "u1 привет дом 世界\n", 100 / 3))
    replay.case("score", "a byte-order mark is not part of the first id", lambda: scored("\ufeffu1 A B\nu2 C\n", "u1 A B\nu2 C\n", 0.0))
    replay.case("score", "composed and decomposed accents are one word (NFC)", lambda: scored("u1 caf\u00e9 ol\u00e9\n", "u1 cafe\u0301 ole\u0301\n", 0.0))
    replay.case("score", "a line starting with whitespace is refused by number", lambda: (
        lambda ref, hyp: replay.refused(["wer", ref, hyp], "line 1"))(write(work / "ref.txt", " u1 A B\n"), write(work / "hyp.txt", "u1 A B\n")))

    def baseline_missing():
        ref, hyp = write(work / "ref.txt", "u1 A B\nu2 C D\n"), write(work / "hyp.txt", "u1 A B\nu2 C D\n")
        base = write(work / "base.txt", "u1 A B\n")
        return replay.refused(["wer", ref, hyp, "--baseline", base], "--allow-missing")

    replay.case("score", "a `--baseline` missing utterances needs --allow-missing", baseline_missing)

    def corpus_digits():
        transcript = next((tree / "dev").rglob("*.trans.txt"))
        lines = transcript.read_text().splitlines()
        utt, words = lines[0].split(" ", 1)
        transcript.write_text("\n".join([f"{utt} {words} 42", *lines[1:]]) + "\n")
        first = f"{tree / 'dev' / utt.split('-')[0] / utt.split('-')[1] / utt}.flac"
        return replay.refused(["corpus", "pack", "--dir", tree, "--out", work / "pack.plc"], f"{first}: transcript has '4'")

    shutil.rmtree(tree)
    made = replay.call(["corpus", "fixture", "--out", tree, "--subsets", "train", "dev", "test"])
    assert made.code == 0, made.stderr
    replay.case("score", "corpus transcripts with digits are refused by name, not stripped", corpus_digits)

    # A checkpoint and an export holding NaN: head.bias is stored as raw little-endian f32 in
    # both, so its bytes, read from an export of the same model, are found in the checkpoint.
    export = work / "export"
    made = replay.call(["prune", "--checkpoint", TRAINED, "--magnitude", "--budget", "90%", "--out", export, "--device", "cpu", "--quiet"])
    assert made.code == 0, made.stderr
    weights = (export / "model.safetensors").read_bytes()
    at, length = safetensors_entry(weights, "head.bias")
    plc = TRAINED.read_bytes()
    assert plc.count(weights[at : at + length]) == 1, "head.bias is not stored once, raw, in the checkpoint"
    where = plc.index(weights[at : at + length])
    nan_plc = write(work / "nan.plc", plc[:where] + struct.pack("<f", float("nan")) + plc[where + 4 :])
    replay.case("score", "a checkpoint with NaN weights: `eval` refuses it naming the tensor", lambda: replay.refused(
        ["eval", "--checkpoint", nan_plc, "--device", "cpu"], "head.bias holds NaN or infinite values"))
    replay.case("score", "a checkpoint with NaN weights: `prune` refuses it", lambda: replay.refused(
        ["prune", "--checkpoint", nan_plc, "--magnitude", "--budget", "50%", "--out", work / "nan-export"], "head.bias holds NaN or infinite values"))
    nan_export = work / "nan-export-dir"
    shutil.copytree(export, nan_export)
    write(nan_export / "model.safetensors", weights[:at] + struct.pack("<f", float("inf")) + weights[at + 4 :])
    replay.case("score", "an export with an infinite weight is refused naming the tensor", lambda: replay.refused(
        ["eval", "--checkpoint", nan_export, "--device", "cpu"], "head.bias holds NaN or infinite values"))

    def flac_bits(bits):
        data = bytearray(TONE.read_bytes())
        # STREAMINFO follows "fLaC" and a 4-byte block header; bits per sample − 1 is the low
        # bit of its byte 12 and the high four bits of byte 13.
        info = 8
        minus_one = bits - 1
        data[info + 12] = (data[info + 12] & 0xFE) | (minus_one >> 4)
        data[info + 13] = (data[info + 13] & 0x0F) | ((minus_one & 0x0F) << 4)
        odd = write(work / f"bits{bits}.flac", bytes(data))
        return replay.refused(["fbank", odd, "--out", work / f"bits{bits}.npy"], odd.name)

    replay.case("score", "a FLAC whose header says 32 bits over 16-bit frames", lambda: flac_bits(32))
    replay.case("score", "a FLAC whose header says 8 bits over 16-bit frames", lambda: flac_bits(8))
    replay.case("score", "`corpus fixture --subsets ../x` stays inside --out", lambda: replay.refused(
        ["corpus", "fixture", "--out", work / "fx", "--subsets", "../x", "dev", "test"], "plain name inside --out"))
    replay.case("score", "`corpus fixture --subsets a a a` does not merge splits", lambda: replay.refused(
        ["corpus", "fixture", "--out", work / "fx", "--subsets", "a", "a", "a"], "three different names"))
    replay.case("score", "`eval --threshold` on a dense checkpoint is refused", lambda: replay.refused(
        ["eval", "--checkpoint", TRAINED, "--threshold", "0.5"], "--threshold applies to gated checkpoints"))

    # --- messages that don't say what ----------------------------------------------------
    def wrong_dtype():
        odd = work / "i32-export"
        shutil.copytree(export, odd, dirs_exist_ok=True)
        header_len = struct.unpack("<Q", weights[:8])[0]
        header = weights[8 : 8 + header_len].decode()
        dtype = header.index('"F32"', header.index('"head.bias":{'))
        edited = bytearray(weights)
        edited[8 + dtype + 1] = ord("I")
        write(odd / "model.safetensors", bytes(edited))
        return replay.refused(["eval", "--checkpoint", odd, "--device", "cpu"], "head.bias is I32, not F32")

    replay.case("message", "an export tensor of the wrong dtype is named", wrong_dtype)
    replay.case("message", "an overflowing float is echoed as typed (`--lr 1e400`)", lambda: replay.refused(
        ["train", "--out", work / "never", "--lr", "1e400"], "invalid value '1e400' for '--lr", code=2))
    replay.case("message", "a step count past the limit is refused (`--steps 18446744073709551615`)", lambda: replay.refused(
        ["train", "--out", work / "never", "--steps", "18446744073709551615"], "steps 18446744073709551615"))

    def bom_in_warning():
        ref = write(work / "ref.txt", "\ufeffu1 A B\nu2 C\n")
        hyp = write(work / "hyp.txt", "u1 A B\n")
        outcome = replay.call(["wer", ref, hyp, "--allow-missing"])
        if outcome.code != 0:
            return [outcome], f"exit {outcome.code}: {outcome.stderr[-300:]}"
        if "\ufeff" in outcome.stdout + outcome.stderr:
            return [outcome], "a byte-order mark is printed"
        return [outcome], None if "u2" in outcome.stderr + outcome.stdout else "the missing utterance is not named"

    replay.case("message", "no invisible byte-order mark in a warning", bom_in_warning)

    def threshold_one():
        outcome = replay.call(["prune", "--checkpoint", run_dir / "checkpoint.plc", "--threshold", "1", "--out", work / "all-cut"])
        text = outcome.stdout + outcome.stderr
        return [outcome], "NaN printed" if "NaN" in text else None

    replay.case("message", "`prune --threshold 1` prints no NaN", threshold_one)
    # Parsed, then refused for the checkpoint that is not there: the thresholds were accepted
    # (the sweep itself is the CLI tests' business).
    replay.case("message", "`sweep --thresholds 0.1 0.2` (as the help writes the default) is accepted", lambda: replay.refused(
        ["sweep", "--checkpoint", work / "absent.plc", "--thresholds", "0.1", "0.2"], "absent.plc"))


if __name__ == "__main__":
    main()
