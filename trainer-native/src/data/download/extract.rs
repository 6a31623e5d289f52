//! Unpacking a verified LibriSpeech tarball into the layout `prunelab train --librispeech ROOT`
//! reads (`ROOT/<subset>/<speaker>/<chapter>/…`). Everything is unpacked into a staging
//! directory first and moved into place in one rename, so a failure or a crash mid-way never
//! leaves a half-filled subset where training would find it.

use std::fs::File;
use std::path::{Component, Path, PathBuf};

use flate2::read::GzDecoder;

/// The directory a subset is unpacked into before it is moved into place. A crash leaves it
/// behind; the next attempt removes it first.
pub fn staging_dir(root: &Path, subset: &str) -> PathBuf {
    root.join(format!(".{subset}.unpacking"))
}

/// Unpacks `tarball` (holding `LibriSpeech/<subset>/…` and a few top-level text files) into
/// `root/<subset>`, which must not exist yet; the top-level files (README, SPEAKERS.TXT, …)
/// go to `root` unless already there. Returns the number of files unpacked. Entries outside
/// `LibriSpeech/`, with `..` or absolute paths, or of a kind other than file or directory
/// (links, devices) are refused: a tarball is data from elsewhere.
/// `read` is told how many bytes of the tarball have been read (for a progress bar).
pub fn unpack_subset(tarball: &Path, root: &Path, subset: &str, read: &dyn Fn(u64)) -> Result<usize, String> {
    let target = root.join(subset);
    if target.exists() {
        return Err(format!(
            "{}: already exists and was not unpacked by prunelab (no record of a verified download); \
             move it away to download it again",
            target.display()
        ));
    }
    let staging = staging_dir(root, subset);
    remove_if_present(&staging)?;
    let unpacked = unpack_into(tarball, root, &staging, subset, read);
    match unpacked {
        Ok(files) => {
            std::fs::rename(&staging, &target)
                .map_err(|e| format!("{}: cannot move into place: {e}", target.display()))?;
            Ok(files)
        }
        Err(e) => {
            let _ = std::fs::remove_dir_all(&staging);
            Err(e)
        }
    }
}

fn unpack_into(tarball: &Path, root: &Path, staging: &Path, subset: &str, read: &dyn Fn(u64)) -> Result<usize, String> {
    let name = tarball.display();
    let file = File::open(tarball).map_err(|e| format!("{name}: cannot open: {e}"))?;
    let counted = Counted {
        inner: file,
        bytes: 0,
        read,
    };
    let mut archive = tar::Archive::new(GzDecoder::new(counted));
    std::fs::create_dir_all(staging).map_err(|e| format!("{}: cannot create: {e}", staging.display()))?;
    let mut files = 0;
    let entries = archive
        .entries()
        .map_err(|e| format!("{name}: not a tar archive: {e}"))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| format!("{name}: damaged archive: {e}"))?;
        let path = entry
            .path()
            .map_err(|e| format!("{name}: an entry's name is unreadable: {e}"))?
            .into_owned();
        let parts = plain_parts(&path)
            .ok_or_else(|| format!("{name}: refused entry {}: not a plain relative path", path.display()))?;
        let kind = entry.header().entry_type();
        if !(kind.is_file() || kind.is_dir()) {
            return Err(format!(
                "{name}: refused entry {}: only files and directories are unpacked",
                path.display()
            ));
        }
        let destination = match parts.as_slice() {
            [top, ..] if top != "LibriSpeech" => {
                return Err(format!("{name}: entry {} is outside LibriSpeech/", path.display()));
            }
            [_] => continue,
            [_, file] if kind.is_file() => {
                // A top-level text file; an earlier subset's copy is the same file.
                let at = root.join(file);
                if at.exists() {
                    continue;
                }
                at
            }
            [_, sub, rest @ ..] if sub == subset => rest.iter().fold(staging.to_path_buf(), |p, c| p.join(c)),
            [_, other, ..] => {
                return Err(format!(
                    "{name}: holds {other}/, not only {subset}/ (is the tarball the one its name says?)"
                ));
            }
            [] => continue,
        };
        if kind.is_dir() {
            std::fs::create_dir_all(&destination)
                .map_err(|e| format!("{}: cannot create: {e}", destination.display()))?;
            continue;
        }
        if let Some(parent) = destination.parent() {
            std::fs::create_dir_all(parent).map_err(|e| format!("{}: cannot create: {e}", parent.display()))?;
        }
        entry
            .unpack(&destination)
            .map_err(|e| format!("{name}: cannot unpack {}: {e}", path.display()))?;
        files += 1;
    }
    Ok(files)
}

/// The path's components when every one is a plain name.
fn plain_parts(path: &Path) -> Option<Vec<String>> {
    path.components()
        .filter(|c| !matches!(c, Component::CurDir))
        .map(|c| match c {
            Component::Normal(name) => name.to_str().map(str::to_string),
            _ => None,
        })
        .collect()
}

fn remove_if_present(dir: &Path) -> Result<(), String> {
    match std::fs::remove_dir_all(dir) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(format!("{}: cannot remove an earlier attempt: {e}", dir.display()))
        }
        _ => Ok(()),
    }
}

/// A reader that reports how many bytes have gone through it.
struct Counted<'a, R> {
    inner: R,
    bytes: u64,
    read: &'a dyn Fn(u64),
}

impl<R: std::io::Read> std::io::Read for Counted<'_, R> {
    fn read(&mut self, buffer: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buffer)?;
        self.bytes += n as u64;
        (self.read)(self.bytes);
        Ok(n)
    }
}
