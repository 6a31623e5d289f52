//! Unpacking a verified LibriSpeech tarball into the layout `prunelab train --librispeech ROOT`
//! reads (`ROOT/<subset>/<speaker>/<chapter>/…`). Everything is unpacked into a staging
//! directory first and moved into place in one rename, so a failure or a crash mid-way never
//! leaves a half-filled subset where training would find it.

use std::fs::File;
use std::path::{Component, Path, PathBuf};

use flate2::read::GzDecoder;
use prunelab_engine::bounded_read::regular_file;

/// The record in a finished subset's directory: the sums its tarball was checked against.
pub const RECORD: &str = ".prunelab-verified";

/// The directory a subset is unpacked into before it is moved into place. A crash leaves it
/// behind; the next attempt removes it first.
fn staging_dir(root: &Path, subset: &str) -> PathBuf {
    root.join(format!(".{subset}.unpacking"))
}

/// Unpacks `tarball` (holding `LibriSpeech/<subset>/…` and a few top-level `*.TXT` files) into
/// `root/<subset>`, which must not exist yet, with `record` written into it as [`RECORD`]
/// before it is moved into place. The top-level files (README.TXT, SPEAKERS.TXT, …) go to
/// `root` unless already there, each written whole or not at all. Returns the number of files
/// unpacked. Entries outside `LibriSpeech/<subset>/`, other top-level files, `..` or absolute
/// paths, and kinds other than file or directory (links, devices) are refused: a tarball is
/// data from elsewhere. `read` is told how many bytes of the tarball have been read.
pub fn unpack_subset(
    tarball: &Path,
    root: &Path,
    subset: &str,
    record: &str,
    read: &dyn Fn(u64),
) -> Result<usize, String> {
    let target = root.join(subset);
    // The caller checked; this guards the rename, which would replace an empty directory.
    if target.exists() {
        return Err(format!(
            "{}: appeared while the tarball was unpacking; left as it is",
            target.display()
        ));
    }
    let staging = staging_dir(root, subset);
    remove_if_present(&staging)?;
    let unpacked = unpack_into(tarball, root, &staging, subset, read).and_then(|files| {
        let at = staging.join(RECORD);
        std::fs::write(&at, record).map_err(|e| format!("{}: cannot write: {e}", at.display()))?;
        Ok(files)
    });
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
    regular_file(tarball).map_err(|e| e.to_string())?;
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
            [_, file] if kind.is_file() && file.ends_with(".TXT") => {
                // A top-level text file; an earlier subset's copy is the same file. Written
                // through a temporary name, so a failure leaves none or all of it.
                let at = root.join(file);
                if !at.exists() {
                    let partial = root.join(format!(".{file}.unpacking"));
                    entry
                        .unpack(&partial)
                        .and_then(|_| std::fs::rename(&partial, &at))
                        .map_err(|e| format!("{name}: cannot unpack {}: {e}", path.display()))?;
                }
                continue;
            }
            [_, file] if kind.is_file() => {
                return Err(format!(
                    "{name}: refused entry {}: LibriSpeech's top-level files are *.TXT",
                    path.display()
                ));
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

#[cfg(test)]
mod tests {
    use std::io::Write;

    use flate2::Compression;
    use flate2::write::GzEncoder;

    use super::*;

    /// An entry of a test archive: its raw name (written into the header as is, so names a
    /// careful writer would refuse can be made), its type and contents.
    struct Entry<'a>(&'a str, tar::EntryType, &'a [u8]);

    fn tarball(dir: &Path, entries: &[Entry]) -> PathBuf {
        let mut builder = tar::Builder::new(GzEncoder::new(Vec::new(), Compression::fast()));
        for Entry(name, kind, data) in entries {
            let mut header = tar::Header::new_gnu();
            header.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
            header.set_entry_type(*kind);
            header.set_size(data.len() as u64);
            header.set_mode(0o644);
            if *kind == tar::EntryType::Symlink {
                header.set_link_name("/etc/passwd").unwrap();
            }
            header.set_cksum();
            builder.append(&header, *data).unwrap();
        }
        let bytes = builder.into_inner().unwrap().finish().unwrap();
        let path = dir.join("dev-clean.tar.gz");
        std::fs::File::create(&path).unwrap().write_all(&bytes).unwrap();
        path
    }

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("prunelab-extract-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("root")).unwrap();
        dir
    }

    const FLAC: &str = "LibriSpeech/dev-clean/1/2/1-2-0000.flac";

    #[test]
    fn a_subset_is_unpacked_whole_with_its_record_and_top_level_files() {
        let dir = scratch("good");
        let file = tarball(
            &dir,
            &[
                Entry("LibriSpeech/", tar::EntryType::Directory, b""),
                Entry("LibriSpeech/README.TXT", tar::EntryType::Regular, b"read me"),
                Entry(FLAC, tar::EntryType::Regular, b"fLaC"),
            ],
        );
        let root = dir.join("root");
        assert_eq!(unpack_subset(&file, &root, "dev-clean", "sums\n", &|_| {}).unwrap(), 1);
        assert_eq!(
            std::fs::read(root.join("dev-clean/1/2/1-2-0000.flac")).unwrap(),
            b"fLaC"
        );
        assert_eq!(
            std::fs::read_to_string(root.join("dev-clean").join(RECORD)).unwrap(),
            "sums\n"
        );
        assert_eq!(std::fs::read(root.join("README.TXT")).unwrap(), b"read me");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// Each hostile entry beside a good one: refused by name, and nothing of the subset (nor a
    /// staging directory) is left behind.
    #[test]
    fn hostile_entries_are_refused_and_leave_nothing() {
        for (entry, problem) in [
            (
                Entry("LibriSpeech/dev-clean/../../x", tar::EntryType::Regular, b"x"),
                "not a plain relative path",
            ),
            (
                Entry("/etc/x", tar::EntryType::Regular, b"x"),
                "not a plain relative path",
            ),
            (
                Entry("LibriSpeech/dev-clean/link", tar::EntryType::Symlink, b""),
                "only files and directories",
            ),
            (
                Entry("Other/dev-clean/x", tar::EntryType::Regular, b"x"),
                "outside LibriSpeech/",
            ),
            (
                Entry("LibriSpeech/test-clean/x", tar::EntryType::Regular, b"x"),
                "holds test-clean/",
            ),
            (
                Entry("LibriSpeech/dev-clean", tar::EntryType::Regular, b"x"),
                "top-level files are *.TXT",
            ),
        ] {
            let dir = scratch("hostile");
            let name = entry.0;
            let file = tarball(&dir, &[Entry(FLAC, tar::EntryType::Regular, b"fLaC"), entry]);
            let root = dir.join("root");
            let error = unpack_subset(&file, &root, "dev-clean", "sums\n", &|_| {}).unwrap_err();
            assert!(error.contains(problem), "{name}: {error}");
            let left: Vec<_> = std::fs::read_dir(&root)
                .unwrap()
                .flatten()
                .map(|e| e.file_name())
                .collect();
            assert!(left.is_empty(), "{name}: left {left:?}");
            assert!(
                !dir.join("x").exists() && !Path::new("/etc/x").exists(),
                "{name}: wrote outside"
            );
            std::fs::remove_dir_all(&dir).unwrap();
        }
    }
}
