//! A run's output directory and what makes it resumable:
//!
//! ```text
//! DIR/run.json                  the command line that started the run (for --resume)
//! DIR/checkpoints/step-NNNNNNNN.plc   the last K checkpoints, each written atomically
//! DIR/checkpoint.plc            the final model (when the run finished)
//! DIR/metrics.jsonl, trace.pltrace, summary.json, hyp-*.txt
//! DIR/run.lock                  locked by the process writing the run, holding its id
//! ```
//!
//! Every file is written to a temporary name, flushed and renamed, so a kill at any moment
//! leaves each checkpoint either complete or absent. Resuming takes the newest checkpoint that
//! decodes and cuts the metrics and trace back to its step.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use prunelab_engine::bounded_read::{limits, read_bounded, read_text_bounded};
use prunelab_engine::store::{Trace, decode_trace, encode_trace};
use prunelab_engine::train::{TrainEvent, TrainerState};
use serde::{Deserialize, Serialize};

use crate::atomic::{remove_leftover_temporaries, write_atomically};
use crate::models::read_checkpoint;

const CHECKPOINTS: &str = "checkpoints";
const INVOCATION: &str = "run.json";
const FINAL_CHECKPOINT: &str = "checkpoint.plc";
const LOCK: &str = "run.lock";
/// The results a run writes beside `run.json` (with the `hyp-*.txt` files, see
/// [`is_hypothesis_file`], and everything under `checkpoints/` and `tensorboard/`): what a
/// replacing run deletes.
const RESULT_FILES: [&str; 4] = [FINAL_CHECKPOINT, "summary.json", "trace.pltrace", "metrics.jsonl"];

/// Whether `name` is one of a run's hypothesis files (`hyp-<split>.txt`).
fn is_hypothesis_file(name: &str) -> bool {
    name.starts_with("hyp-") && name.ends_with(".txt")
}

/// The run directory `path` is one of the files of (a directory `prunelab train` wrote, by its
/// `run.json`), if any.
fn run_owning(path: &Path) -> Option<PathBuf> {
    let name = path.file_name()?.to_string_lossy().into_owned();
    let parent = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let is_run = |dir: &Path| dir.join(INVOCATION).is_file();
    let own = RESULT_FILES.contains(&name.as_str()) || [INVOCATION, LOCK].contains(&name.as_str());
    if is_run(parent) && (own || is_hypothesis_file(&name)) {
        return Some(parent.to_path_buf());
    }
    let grandparent = parent.parent()?;
    let sub = parent.file_name()?;
    ((sub == CHECKPOINTS || sub == "tensorboard") && is_run(grandparent)).then(|| grandparent.to_path_buf())
}

/// Refuses an output (`flag`'s value) that is one of a training run's own files, unless
/// `overwrite`: writing it would replace the run's checkpoint, metrics or trace with another
/// command's output, or be replaced by the run. Outputs beside a run's files (a report, an
/// export's directory) are fine.
pub fn refuse_replacing_a_runs_file(flag: &str, output: &Path, overwrite: bool) -> Result<(), String> {
    match run_owning(output) {
        Some(run) if !overwrite => Err(format!(
            "{flag} {}: is a file of the training run in {}; choose another path, or pass --overwrite to replace it",
            output.display(),
            run.display()
        )),
        _ => Ok(()),
    }
}

/// The step of a `step-NNNNNNNN.plc` name (`None` for any other name).
fn checkpoint_step(name: &str) -> Option<usize> {
    name.strip_prefix("step-")
        .and_then(|n| n.strip_suffix(".plc"))
        .and_then(|n| n.parse().ok())
}

/// What `run.json` records.
#[derive(Serialize, Deserialize)]
struct Invocation {
    /// The arguments after `prunelab train`.
    args: Vec<String>,
    /// The directory they were given in (relative paths among them are relative to it).
    cwd: PathBuf,
}

pub struct RunDir {
    root: PathBuf,
    /// The lock on the directory, held from [`RunDir::hold`] until this process ends.
    held: OnceLock<File>,
}

impl RunDir {
    /// The run directory at `root`, touching nothing (see [`RunDir::prepare`]).
    pub fn at(root: &Path) -> Self {
        Self {
            root: root.to_path_buf(),
            held: OnceLock::new(),
        }
    }

    /// Takes the directory for this run: an exclusive lock on `DIR/run.lock` (which names the
    /// holding process), kept until the process ends, by a crash or a kill too. A second
    /// `prunelab train` on the same directory is refused at once, naming the holder: two writers
    /// would leave a directory of one run's checkpoints beside the other's metrics. Nothing to
    /// do while the directory does not exist yet ([`RunDir::prepare`] holds it once made).
    pub fn hold(&self) -> Result<(), String> {
        if self.held.get().is_some() || !self.root.is_dir() {
            return Ok(());
        }
        let path = self.path(LOCK);
        let fail = |e: std::io::Error| format!("{}: cannot lock: {e}", path.display());
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(fail)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let holder = std::fs::read_to_string(&path).unwrap_or_default();
                return Err(format!(
                    "{}: another prunelab train (process {}) is writing this run; wait for it to end, or give another --out",
                    self.root.display(),
                    holder.trim()
                ));
            }
            Err(TryLockError::Error(e)) => return Err(fail(e)),
        }
        file.set_len(0).map_err(fail)?;
        write!(file, "{}", std::process::id()).map_err(fail)?;
        let _ = self.held.set(file);
        Ok(())
    }

    /// Creates the directory once the run that takes it over has checked everything else.
    /// A run that continues or replaces an earlier one also clears the temporaries a killed
    /// writer left behind (they would pile up beside --keep-checkpoints); a new run leaves a
    /// directory's other files alone.
    pub fn prepare(&self, clear_temporaries: bool) -> Result<(), String> {
        std::fs::create_dir_all(self.root.join(CHECKPOINTS))
            .map_err(|e| format!("{}: cannot create: {e}", self.root.display()))?;
        self.hold()?;
        if clear_temporaries {
            for dir in [self.root.clone(), self.root.join(CHECKPOINTS)] {
                remove_leftover_temporaries(&dir)?;
            }
        }
        Ok(())
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.root.join(name)
    }

    /// Records the training arguments so `--resume DIR` needs nothing else.
    pub fn save_invocation(&self, args: &[String]) -> Result<(), String> {
        let cwd = std::env::current_dir().map_err(|e| format!("cannot read the working directory: {e}"))?;
        let json = serde_json::to_vec_pretty(&Invocation {
            args: args.to_vec(),
            cwd,
        })
        .map_err(|e| e.to_string())?;
        write_atomically(&self.path(INVOCATION), &json)
    }

    /// The arguments a run in `root` was started with, and the directory they were given in.
    pub fn load_invocation(root: &Path) -> Result<(Vec<String>, PathBuf), String> {
        let path = root.join(INVOCATION);
        let bytes = read_bounded(&path, limits::JSON, "run record")
            .map_err(|e| format!("{e}; is {} a directory written by `prunelab train`?", root.display()))?;
        let invocation: Invocation =
            serde_json::from_slice(&bytes).map_err(|e| format!("{}: malformed: {e}", path.display()))?;
        Ok((invocation.args, invocation.cwd))
    }

    /// Writes the checkpoint of `step` and deletes all but the newest `keep`.
    pub fn save_checkpoint(&self, step: usize, bytes: &[u8], keep: usize) -> Result<PathBuf, String> {
        let path = self.path(CHECKPOINTS).join(format!("step-{step:08}.plc"));
        write_atomically(&path, bytes)?;
        let mut saved = self.checkpoints()?;
        saved.sort_by_key(|(step, _)| std::cmp::Reverse(*step));
        for (_, old) in saved.into_iter().skip(keep.max(1)) {
            std::fs::remove_file(&old).map_err(|e| format!("{}: cannot delete: {e}", old.display()))?;
        }
        Ok(path)
    }

    /// Whether `root` holds a run worth keeping (a checkpoint, of a step or the final one): a
    /// fresh run there would replace it, which takes `--overwrite`. A run killed before its
    /// first checkpoint holds nothing to resume and starts over.
    pub fn holds_run(root: &Path) -> bool {
        let run = Self::at(root);
        run.path(FINAL_CHECKPOINT).exists() || run.checkpoints().is_ok_and(|steps| !steps.is_empty())
    }

    /// Whether a `prunelab train` started in `root` (its `run.json` is there).
    pub fn has_invocation(root: &Path) -> bool {
        root.join(INVOCATION).is_file()
    }

    /// Deletes what an earlier run in this directory wrote (a fresh run with `--overwrite`
    /// replaces it, once everything it needs has been checked), so no result of the old run
    /// is left to be mistaken for the new one's. Returns how many step checkpoints there were.
    pub fn clear_earlier_run(&self) -> Result<usize, String> {
        let old = self.checkpoints()?;
        let delete = |path: &Path| match std::fs::remove_file(path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(format!("{}: cannot delete: {e}", path.display()))
            }
            _ => Ok(()),
        };
        for (_, path) in &old {
            delete(path)?;
        }
        for name in RESULT_FILES {
            delete(&self.path(name))?;
        }
        for entry in std::fs::read_dir(&self.root).into_iter().flatten().flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if is_hypothesis_file(&name) {
                delete(&entry.path())?;
            }
        }
        let scalars = self.path("tensorboard");
        if scalars.is_dir() {
            std::fs::remove_dir_all(&scalars).map_err(|e| format!("{}: cannot delete: {e}", scalars.display()))?;
        }
        Ok(old.len())
    }

    /// Step checkpoints on disk, in no particular order.
    fn checkpoints(&self) -> Result<Vec<(usize, PathBuf)>, String> {
        let dir = self.path(CHECKPOINTS);
        let listing = match std::fs::read_dir(&dir) {
            Ok(listing) => listing,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(format!("{}: cannot list: {e}", dir.display())),
        };
        let mut found = Vec::new();
        for entry in listing.flatten() {
            if let Some(step) = checkpoint_step(&entry.file_name().to_string_lossy()) {
                found.push((step, entry.path()));
            }
        }
        Ok(found)
    }

    /// The newest checkpoint that decodes. One that does not (it cannot be half-written, but a
    /// disk can still fail) is reported and passed over for the one before.
    pub fn latest_checkpoint(&self) -> Result<(PathBuf, TrainerState), String> {
        let mut saved = self.checkpoints()?;
        saved.sort_by_key(|(step, _)| std::cmp::Reverse(*step));
        for (_, path) in saved {
            match read_checkpoint(&path) {
                Ok(state) => return Ok((path, state)),
                Err(problem) => tell!("warning: passing over an unusable checkpoint: {problem}"),
            }
        }
        Err(format!(
            "{}: no checkpoint to resume from (the run stopped before its first one)",
            self.path(CHECKPOINTS).display()
        ))
    }

    /// Keeps the metrics lines of the first `step` steps (a resumed run logs the rest again).
    pub fn truncate_metrics(&self, step: usize) -> Result<(), String> {
        let path = self.path("metrics.jsonl");
        if !path.exists() {
            return Ok(());
        }
        let text = read_text_bounded(&path, limits::METRICS, "metrics file").map_err(|e| e.to_string())?;
        let kept: String = text
            .lines()
            .filter(|line| {
                // A line cut short by the kill does not parse and is dropped with the rest.
                serde_json::from_str::<TrainEvent>(line).is_ok_and(|e| e.steps_done() <= step)
            })
            .map(|line| format!("{line}\n"))
            .collect();
        write_atomically(&path, kept.as_bytes())
    }

    /// The trace so far, cut back to `step` (none for an ungated run or a run without one yet).
    pub fn load_trace(&self, step: usize) -> Result<Option<Trace>, String> {
        let path = self.path("trace.pltrace");
        if !path.exists() {
            return Ok(None);
        }
        let bytes = read_bounded(&path, limits::TRACE, "trace").map_err(|e| e.to_string())?;
        let mut trace = decode_trace(&bytes, &path.display().to_string()).map_err(|e| e.to_string())?;
        trace.truncate_to(step);
        write_atomically(&path, &encode_trace(&trace))?;
        Ok(Some(trace))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// flock locks belong to an open file, so two holders in one process conflict as two
    /// processes do.
    #[test]
    fn a_held_run_directory_refuses_a_second_writer_until_released() {
        let root = std::env::temp_dir().join(format!("prunelab-rundir-lock-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let first = RunDir::at(&root);
        first.hold().unwrap();
        assert!(
            first.held.get().is_none(),
            "nothing to hold before the directory exists"
        );
        first.prepare(false).unwrap();
        assert!(first.held.get().is_some());
        let err = RunDir::at(&root).hold().unwrap_err();
        let holder = format!(
            "another prunelab train (process {}) is writing this run",
            std::process::id()
        );
        assert!(err.contains(&holder), "{err}");
        drop(first);
        RunDir::at(&root).hold().expect("released with its holder");
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn a_runs_own_files_are_refused_as_outputs_and_its_neighbours_are_not() {
        let root = std::env::temp_dir().join(format!("prunelab-rundir-files-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let run = RunDir::at(&root);
        run.prepare(false).unwrap();
        assert_eq!(
            run_owning(&root.join("checkpoint.plc")),
            None,
            "not a run before its run.json"
        );
        run.save_invocation(&["--steps".into(), "1".into()]).unwrap();
        for file in [
            "checkpoint.plc",
            "summary.json",
            "hyp-dev.txt",
            "checkpoints/step-00000010.plc",
        ] {
            let err = refuse_replacing_a_runs_file("--out", &root.join(file), false).unwrap_err();
            assert!(err.contains("is a file of the training run in"), "{file}: {err}");
            refuse_replacing_a_runs_file("--out", &root.join(file), true).unwrap();
        }
        for beside in ["report.json", "pruned/manifest.json", "feats.npy"] {
            refuse_replacing_a_runs_file("--out", &root.join(beside), false).unwrap();
        }
        std::fs::remove_dir_all(&root).unwrap();
    }
}
