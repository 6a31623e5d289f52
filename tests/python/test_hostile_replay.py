"""Issue 33's table of hostile input, replayed against the built CLI
(trainer-native/tests/hostile_replay.py): every case ends in a clear error or a correct result,
with no panic, hang, run over 1 GiB or file of another run changed."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_every_case_of_the_hostile_input_table():
    script = ROOT / "trainer-native" / "tests" / "hostile_replay.py"
    binary = os.environ.get("PRUNELAB_BIN", str(ROOT / "target" / "debug" / "prunelab"))
    done = subprocess.run([sys.executable, str(script), "--bin", binary], capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
