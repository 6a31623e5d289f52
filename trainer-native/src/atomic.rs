//! Crash-safe file writes: write a temporary file beside the target, flush it to disk, rename.
//! A reader sees the old file or the new one, never half of one.

use std::io::Write;
use std::path::{Path, PathBuf};

const TEMPORARY_MARK: &str = "tmp-";

/// Only a regular file (or nothing) is replaced: the rename would otherwise put a file where a
/// device, a pipe, a directory or a symbolic link was. A failed write leaves no temporary.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), String> {
    if let Ok(existing) = std::fs::symlink_metadata(path)
        && !existing.file_type().is_file()
    {
        let kind = match existing.file_type() {
            t if t.is_dir() => "a directory",
            t if t.is_symlink() => "a symbolic link",
            _ => "a device, pipe or socket",
        };
        return Err(format!(
            "{}: is {kind}, not a file; refusing to replace it",
            path.display()
        ));
    }
    let tmp = path.with_extension(format!("{TEMPORARY_MARK}{}", std::process::id()));
    let fail = |what: &str, e: std::io::Error| format!("{}: cannot {what}: {e}", path.display());
    let written = std::fs::File::create(&tmp)
        .map_err(|e| fail("create temporary file", e))
        .and_then(|mut file| {
            file.write_all(bytes).map_err(|e| fail("write", e))?;
            file.sync_all().map_err(|e| fail("flush to disk", e))
        })
        .and_then(|()| std::fs::rename(&tmp, path).map_err(|e| fail("move into place", e)));
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written
}

/// Has `draw` write `path` by way of a hidden temporary beside it (`.NAME.PID.EXT`: the
/// extension stays last, since some writers pick the format by it), renamed into place once
/// `draw` succeeds: a full disk or a failed draw leaves the old file or none, never half of one.
/// For writers that want a path of their own (plotters' backends) rather than bytes.
pub fn drawn_through_temporary(path: &Path, draw: impl FnOnce(&Path) -> Result<(), String>) -> Result<PathBuf, String> {
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let (stem, extension) = file_name.rsplit_once('.').unwrap_or((&file_name, ""));
    let temporary = path.with_file_name(format!(".{stem}.{}.{extension}", std::process::id()));
    let drawn = draw(&temporary).and_then(|()| std::fs::rename(&temporary, path).map_err(|e| e.to_string()));
    if let Err(e) = drawn {
        let _ = std::fs::remove_file(&temporary);
        return Err(format!("{}: {e}", path.display()));
    }
    Ok(path.to_path_buf())
}

/// Refuses an output that is one of the command's own inputs (the same file under any name):
/// writing it would destroy what the command reads, and with it the way to run it again.
pub fn refuse_overwriting_inputs(flag: &str, output: &Path, inputs: &[&Path]) -> Result<(), String> {
    let Ok(output_file) = std::fs::canonicalize(output) else {
        return Ok(()); // not there yet: nothing to overwrite
    };
    match inputs
        .iter()
        .find(|input| std::fs::canonicalize(input).is_ok_and(|input| input == output_file))
    {
        Some(input) => Err(format!(
            "{flag} {} is also this command's input {}; choose another file",
            output.display(),
            input.display()
        )),
        None => Ok(()),
    }
}

/// Deletes the temporary files that writers killed before their rename left in `dir` (not in
/// its subdirectories). Only for a directory no other process is writing to. Returns how many.
pub fn remove_leftover_temporaries(dir: &Path) -> Result<usize, String> {
    let listing = std::fs::read_dir(dir).map_err(|e| format!("{}: cannot list: {e}", dir.display()))?;
    let mut removed = 0;
    for entry in listing.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if is_temporary_name(&name) && entry.path().is_file() {
            let path = entry.path();
            std::fs::remove_file(&path).map_err(|e| format!("{}: cannot delete: {e}", path.display()))?;
            removed += 1;
        }
    }
    Ok(removed)
}

/// `NAME.tmp-PID`, as `write_atomically` names its temporaries.
fn is_temporary_name(name: &str) -> bool {
    name.rsplit_once('.')
        .and_then(|(_, extension)| extension.strip_prefix(TEMPORARY_MARK))
        .is_some_and(|pid| !pid.is_empty() && pid.bytes().all(|b| b.is_ascii_digit()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_draw_leaves_the_old_file_and_no_temporary() {
        let dir = std::env::temp_dir().join(format!("prunelab-drawn-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let chart = dir.join("chart.png");
        drawn_through_temporary(&chart, |tmp| {
            assert_eq!(
                tmp.file_name().unwrap().to_str().unwrap(),
                format!(".chart.{}.png", std::process::id())
            );
            std::fs::write(tmp, b"old").map_err(|e| e.to_string())
        })
        .unwrap();
        let err = drawn_through_temporary(&chart, |tmp| {
            std::fs::write(tmp, b"half a ch").unwrap();
            Err("No space left on device".into())
        })
        .unwrap_err();
        assert!(err.ends_with("chart.png: No space left on device"), "{err}");
        assert_eq!(std::fs::read(&chart).unwrap(), b"old");
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1, "the temporary is gone");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn leftover_temporaries_are_removed_and_nothing_else() {
        let dir = std::env::temp_dir().join(format!("prunelab-atomic-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("sub.tmp-1")).unwrap();
        write_atomically(&dir.join("step-00000010.plc"), b"kept").unwrap();
        for name in [
            "step-00000020.tmp-4242",
            "metrics.tmp-17",
            "notes.tmp-abc",
            "tmp-5",
            "x.tmp-",
        ] {
            std::fs::write(dir.join(name), b"").unwrap();
        }
        assert_eq!(remove_leftover_temporaries(&dir).unwrap(), 2);
        let mut left: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(
            left,
            ["notes.tmp-abc", "step-00000010.plc", "sub.tmp-1", "tmp-5", "x.tmp-"]
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// Renaming over a FIFO, a directory or a symbolic link would replace it with a file.
    #[test]
    fn only_regular_files_are_replaced_and_a_failed_write_leaves_no_temporary() {
        let dir = std::env::temp_dir().join(format!("prunelab-atomic-special-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("a-directory")).unwrap();
        std::os::unix::fs::symlink("elsewhere", dir.join("a-link")).unwrap();
        let fifo = std::ffi::CString::new(dir.join("a-fifo").to_str().unwrap()).unwrap();
        // SAFETY: a valid NUL-terminated path; mkfifo only creates the node.
        assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o600) }, 0);
        for (name, kind) in [
            ("a-directory", "a directory"),
            ("a-link", "a symbolic link"),
            ("a-fifo", "a device, pipe or socket"),
        ] {
            let err = write_atomically(&dir.join(name), b"x").unwrap_err();
            assert!(err.contains(&format!("is {kind}, not a file")), "{err}");
        }
        assert!(
            std::fs::symlink_metadata(dir.join("a-link"))
                .unwrap()
                .file_type()
                .is_symlink()
        );
        let err = write_atomically(&dir.join("missing-dir").join("f"), b"x").unwrap_err();
        assert!(err.contains("cannot create temporary file"), "{err}");
        write_atomically(&dir.join("plain"), b"one").unwrap();
        write_atomically(&dir.join("plain"), b"two").unwrap();
        assert_eq!(std::fs::read(dir.join("plain")).unwrap(), b"two");
        assert_eq!(
            std::fs::read_dir(&dir).unwrap().count(),
            4,
            "a temporary was left behind"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
