//! Input and surroundings a hostile user controls: output to a full disk or a closed pipe,
//! transcripts long enough to exhaust memory. Each ends in a message and a non-zero status
//! (or a correct result), never a panic or an abort.

mod common;

use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

use common::{scratch, stderr};

fn prunelab() -> Command {
    Command::new(env!("CARGO_BIN_EXE_prunelab"))
}

/// Exit status 1 with `message` on stderr and no panic.
fn assert_clean_failure(output: &Output, message: &str) {
    let err = stderr(output);
    assert_eq!(output.status.code(), Some(1), "{err}");
    assert!(err.contains(message) && !err.contains("panicked"), "{err}");
}

/// Two transcript files of one utterance each, `words` pseudo-random words long.
fn long_transcripts(dir: &std::path::Path, words: usize) -> (PathBuf, PathBuf) {
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut word = || {
        state = state.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
        let letters = 2 + (state >> 60) as usize % 7;
        (0..letters)
            .map(|k| char::from(b'A' + ((state >> (8 * k + 3)) % 26) as u8))
            .collect::<String>()
    };
    let mut line = || (0..words).map(|_| word()).collect::<Vec<_>>().join(" ");
    let (reference, hypothesis) = (dir.join("ref.txt"), dir.join("hyp.txt"));
    std::fs::write(&reference, format!("utt-1 {}\n", line())).unwrap();
    std::fs::write(&hypothesis, format!("utt-1 {}\n", line())).unwrap();
    (reference, hypothesis)
}

/// The writing end of a pipe whose reading end is already closed.
fn pipe_without_reader() -> Stdio {
    use std::os::fd::{FromRawFd, OwnedFd};
    let mut ends = [0; 2];
    // SAFETY: pipe2 fills two new descriptors, each then owned exactly once.
    assert_eq!(unsafe { libc::pipe2(ends.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
    let (reader, writer) = unsafe { (OwnedFd::from_raw_fd(ends[0]), OwnedFd::from_raw_fd(ends[1])) };
    drop(reader);
    Stdio::from(writer)
}

#[test]
fn output_to_a_full_disk_or_a_closed_pipe_ends_with_a_message() {
    let dir = scratch("output");
    let (reference, hypothesis) = long_transcripts(&dir, 3);
    let full = prunelab()
        .arg("wer")
        .args([&reference, &hypothesis])
        .arg("--json")
        .arg("--resamples=10")
        .stdout(std::fs::File::create("/dev/full").unwrap())
        .output()
        .unwrap();
    assert_clean_failure(&full, "cannot write to standard output: No space left on device");

    // A pipe whose reader has gone before the command starts, so every write fails.
    let closed = prunelab()
        .args(["wer".as_ref(), reference.as_os_str(), hypothesis.as_os_str()])
        .stdout(pipe_without_reader())
        .output()
        .unwrap();
    assert_clean_failure(&closed, "cannot write to standard output: Broken pipe");
}

/// 4,000 words a line is ~24,000 characters: the character alignment's full table was
/// 2.3 GB. Under a 512 MiB address-space limit the command must still score it.
#[test]
fn long_lines_are_scored_in_memory_linear_in_their_length() {
    let dir = scratch("long-lines");
    let (reference, hypothesis) = long_transcripts(&dir, 4000);
    let mut command = prunelab();
    command.args(["wer".as_ref(), reference.as_os_str(), hypothesis.as_os_str()]);
    // SAFETY: setrlimit is async-signal-safe and touches nothing of the parent.
    unsafe {
        command.pre_exec(|| {
            let limit = libc::rlimit {
                rlim_cur: 512 << 20,
                rlim_max: 512 << 20,
            };
            if libc::setrlimit(libc::RLIMIT_AS, &limit) == 0 {
                Ok(())
            } else {
                Err(std::io::Error::last_os_error())
            }
        });
    }
    let output = command.output().unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    let report = String::from_utf8_lossy(&output.stdout);
    assert!(report.contains("words           4000"), "{report}");

    let (reference, _) = long_transcripts(&dir, 6000);
    let output = prunelab()
        .args(["wer".as_ref(), reference.as_os_str(), reference.as_os_str()])
        .output()
        .unwrap();
    assert_clean_failure(&output, "ref.txt: line 1: utterance utt-1 is ");
    assert!(
        stderr(&output).contains("transcripts over 32768 are refused"),
        "{}",
        stderr(&output)
    );
}

/// Commands aimed at existing data with input they cannot use leave that data as it was:
/// an empty tree does not replace a corpus pack, and no command writes over its own input.
#[test]
fn a_refused_command_leaves_existing_data_untouched() {
    let dir = scratch("existing");
    let pack = dir.join("corpus.plcorpus");
    std::fs::write(&pack, b"an earlier pack, precious").unwrap();
    let empty_tree = dir.join("empty");
    for split in ["train", "dev", "test"] {
        std::fs::create_dir_all(empty_tree.join(split)).unwrap();
    }
    let output = prunelab()
        .args(["corpus", "pack", "--dir"])
        .arg(&empty_tree)
        .arg("--out")
        .arg(&pack)
        .output()
        .unwrap();
    assert_clean_failure(&output, "train/ holds no utterances");
    assert_eq!(std::fs::read(&pack).unwrap(), b"an earlier pack, precious");

    let audio = dir.join("tone.flac");
    std::fs::copy(concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/data/tone.flac"), &audio).unwrap();
    let before = std::fs::read(&audio).unwrap();
    let same_file_by_another_name = dir.join(".").join("tone.flac");
    let output = prunelab()
        .arg("fbank")
        .arg(&audio)
        .arg("--out")
        .arg(&same_file_by_another_name)
        .output()
        .unwrap();
    assert_clean_failure(&output, "is also this command's input");
    assert_eq!(std::fs::read(&audio).unwrap(), before);
}

/// Zero or non-finite sizes are refused by the flag's name before any work starts.
#[test]
fn zero_and_non_finite_sizes_are_refused_by_name() {
    for (args, flag) in [
        (&["bench", "--batch", "0"][..], "--batch"),
        (&["bench", "--seconds", "NaN"], "--seconds"),
        (&["bench", "--train-batch-seconds", "inf"], "--train-batch-seconds"),
        (&["bench", "--shards", "1,0"], "--shards"),
        (&["compare", "--repeats", "0", "x"], "--repeats"),
        (
            &["sweep", "--checkpoint", "x.plc", "--thresholds", "0.2,nan"],
            "--thresholds",
        ),
        (&["corpus", "fixture", "--out", "x", "--copies", "0"], "--copies"),
    ] {
        let output = prunelab().args(args).output().unwrap();
        let err = stderr(&output);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {err}");
        assert!(
            err.contains(&format!("for '{flag} ")) && !err.contains("panicked"),
            "{args:?}: {err}"
        );
    }
}

/// A `.npy` file's header claiming `shape` of `descr` (NumPy's dtype string), followed by one
/// row of 80 float32 zeros whatever the header says.
fn npy_with_one_row(shape: &str, descr: &str) -> Vec<u8> {
    let mut text = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}");
    text.push_str(&" ".repeat((64 - (11 + text.len()) % 64) % 64));
    text.push('\n');
    let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
    bytes.extend_from_slice(&(text.len() as u16).to_le_bytes());
    bytes.extend_from_slice(text.as_bytes());
    bytes.extend_from_slice(&[0u8; 80 * 4]);
    bytes
}

/// `prunelab logits` reads `.npy` headers from elsewhere: a shape that promises more data than
/// the file holds, or a dtype other than float32, is refused by the file's name before the
/// model is run.
#[test]
fn malformed_feature_files_are_refused_by_name() {
    let dir = scratch("hostile-npy");
    let header = npy_with_one_row;
    // `header` carries one row of data; a file of `rows` rows gets the rest appended.
    let with_rows = |mut bytes: Vec<u8>, rows: usize| {
        bytes.extend(std::iter::repeat_n(0u8, (rows - 1) * 80 * 4));
        bytes
    };
    for (name, bytes, message) in [
        ("huge.npy", header("(4294967296, 80)", "<f4"), "needs"),
        ("double.npy", header("(1, 80)", "<f8"), "float32"),
        ("flat.npy", header("(320,)", "<f4"), "not 2-D"),
        ("short.npy", with_rows(header("(4, 80)", "<f4"), 4), "too short"),
    ] {
        let path = dir.join(name);
        std::fs::write(&path, bytes).unwrap();
        let output = prunelab()
            .args(["logits", "--model", "no-such-model", "--out"])
            .arg(dir.join("out"))
            .arg(&path)
            .output()
            .unwrap();
        // Features are checked before the model is opened (which would fail by its own name).
        assert_clean_failure(&output, message);
        assert!(stderr(&output).contains(name), "{}", stderr(&output));
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A flag that cannot apply to the model given is refused, not ignored: `eval --threshold` on a
/// dense checkpoint would print a dense score under a threshold the reader chose.
#[test]
fn a_threshold_for_a_model_without_gates_is_refused() {
    let dense = concat!(env!("CARGO_MANIFEST_DIR"), "/../static/trained-tiny.plc");
    let output = prunelab()
        .args(["eval", "--checkpoint", dense, "--threshold", "0.5"])
        .output()
        .unwrap();
    assert_clean_failure(
        &output,
        "trained-tiny.plc: --threshold applies to gated checkpoints; this is a checkpoint of method none, which has no gates",
    );
}

/// A fixture's split directories stay inside `--out` and apart: "../x" would write beside it,
/// and one name for three splits would merge them into one directory.
#[test]
fn fixture_split_names_that_escape_or_repeat_are_refused() {
    let dir = scratch("hostile-subsets");
    let out = dir.join("tree");
    for (subsets, message) in [
        (
            ["../escaped", "dev", "test"],
            "a split's directory must be a plain name inside --out",
        ),
        (["a", "a", "a"], "train, dev and test need three different names"),
    ] {
        let output = prunelab()
            .args(["corpus", "fixture", "--out"])
            .arg(&out)
            .arg("--subsets")
            .args(subsets)
            .output()
            .unwrap();
        assert_clean_failure(&output, message);
    }
    assert!(!out.exists() && !dir.join("escaped").exists(), "nothing was written");
}

/// A FIFO with no writer given where a file is read blocked the command forever; a device
/// such as /dev/zero never ends. Both are refused by name before they are opened for reading.
#[test]
fn pipes_and_devices_given_as_files_are_refused_at_once() {
    let dir = scratch("hostile-fifo");
    let fifo = dir.join("checkpoint.plc");
    let c_path = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: mkfifo reads a NUL-terminated path and touches nothing else.
    assert_eq!(unsafe { libc::mkfifo(c_path.as_ptr(), 0o600) }, 0);
    let fifo = fifo.to_str().unwrap();
    for args in [
        vec!["prune", "--checkpoint", fifo, "--out", "unused"],
        vec!["wer", fifo, fifo],
        vec!["eval", "--checkpoint", "/dev/zero"],
    ] {
        let mut child = prunelab()
            .args(&args)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while child.try_wait().unwrap().is_none() {
            if std::time::Instant::now() > deadline {
                child.kill().unwrap();
                panic!("{args:?} still running after 60 s");
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        assert_clean_failure(
            &child.wait_with_output().unwrap(),
            "is a pipe, device or socket, not a regular file",
        );
    }
}

/// Lengths within each flag's range whose product or square exhausts memory are refused up
/// front, with the length: a batch of 1024 × 600 s asked for 19.6 GB and aborted; 200,000
/// frames of features for 6.5 GB.
#[test]
fn lengths_that_would_exhaust_memory_are_refused_up_front() {
    let output = prunelab()
        .args(["bench", "--batch", "1024", "--seconds", "600"])
        .output()
        .unwrap();
    assert_clean_failure(&output, "--batch 1024 × --seconds 600 is 614400 s of audio a step");
    // 12,100 frames (121 s) of float32 [frames, 80], one past the utterance bound of 120 s.
    let dir = scratch("hostile-long-features");
    let frames = 12_100usize;
    let mut npy = npy_with_one_row(&format!("({frames}, 80)"), "<f4");
    npy.resize(npy.len() + (frames - 1) * 80 * 4, 0);
    let features = dir.join("long.npy");
    std::fs::write(&features, npy).unwrap();
    let model = concat!(env!("CARGO_MANIFEST_DIR"), "/../static/trained-tiny.plc");
    let output = prunelab()
        .args(["logits", "--model", model])
        .arg(&features)
        .arg("--out")
        .arg(dir.join("out"))
        .output()
        .unwrap();
    assert_clean_failure(
        &output,
        "long.npy: 12100 frames (121 s) is longer than an utterance may be (120 s)",
    );
}
