//! `prunelab data download librispeech`: fetches LibriSpeech's tarballs, resumes an interrupted
//! download with a range request, checks each tarball against its published checksums and
//! unpacks it where `prunelab train --librispeech ROOT` looks. A second run finds each finished
//! subset's record and downloads nothing.
//!
//! Under `ROOT/.prunelab-download/`: `<subset>.tar.gz.part` while downloading, and
//! `<subset>.tar.gz` once verified (until unpacked, or kept with `--keep-tarballs`). A finished
//! subset holds `ROOT/<subset>/.prunelab-verified`, the sums its tarball was checked against:
//! written into the staging directory before the one rename that puts the subset in place, so
//! a subset is either absent, or whole with its record.

mod checksums;
mod extract;
mod fetch;

use std::path::Path;

use prunelab_engine::bounded_read::{limits, read_text_bounded};

pub use checksums::Checksums;
pub use fetch::FetchProgress;

/// The checksums shipped with Prunelab, for every LibriSpeech subset.
pub const LIBRISPEECH_SUMS: &str = include_str!("librispeech.sums");
/// Every subset of LibriSpeech (OpenSLR resource 12).
pub const LIBRISPEECH_SUBSETS: [&str; 7] = [
    "dev-clean",
    "dev-other",
    "test-clean",
    "test-other",
    "train-clean-100",
    "train-clean-360",
    "train-other-500",
];
/// OpenSLR's own server; `--mirror` names another (`https://us.openslr.org/resources/12`, …).
pub const OPENSLR: &str = "https://www.openslr.org/resources/12";

/// Where and how to download.
pub struct Download<'a> {
    pub root: &'a Path,
    /// The URL tarballs are found under (`<mirror>/<subset>.tar.gz`).
    pub mirror: &'a str,
    pub checksums: &'a Checksums,
    /// Where the checksums came from, for messages.
    pub checksums_source: &'a str,
    /// Keep each verified tarball after unpacking it.
    pub keep_tarballs: bool,
}

/// What happened to one subset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Downloaded, verified and unpacked before: nothing to do.
    AlreadyThere,
    /// Unpacked now, from `downloaded` bytes fetched (0 when a verified tarball was on disk)
    /// after `resumed_from` bytes that an earlier attempt had fetched.
    Unpacked {
        resumed_from: u64,
        downloaded: u64,
        files: usize,
    },
}

/// How a subset's steps report progress.
pub trait Progress: FetchProgress {
    /// A new step begins (`downloading`, `verifying`, `unpacking`).
    fn step(&self, what: &str);
}

impl Download<'_> {
    /// Downloads, verifies and unpacks `subset`, unless its record says that was done.
    pub fn subset(&self, subset: &str, progress: &dyn Progress) -> Result<Outcome, String> {
        let name = format!("{subset}.tar.gz");
        let sums = self
            .checksums
            .of(&name)
            .ok_or_else(|| format!("{name}: no checksum for it in {}", self.checksums_source))?;
        let records = self.root.join(".prunelab-download");
        let tarball = records.join(&name);
        let target = self.root.join(subset);
        if target.exists() {
            self.check_finished(&target, &name)?;
            // A crash between moving the subset into place and removing its tarball.
            self.remove_tarball(&tarball)?;
            return Ok(Outcome::AlreadyThere);
        }
        std::fs::create_dir_all(&records).map_err(|e| format!("{}: cannot create: {e}", records.display()))?;
        let (resumed_from, downloaded) = if tarball.is_file() {
            // Verified by an earlier attempt that did not finish unpacking.
            progress.step("verifying");
            if let Err(e) = checksums::verify(&tarball, sums, |n| progress.at(n)) {
                let _ = std::fs::remove_file(&tarball);
                return Err(format!(
                    "{e}; it had been verified before and was deleted; the next run downloads it again"
                ));
            }
            (0, 0)
        } else {
            let part = records.join(format!("{name}.part"));
            progress.step("downloading");
            let url = format!("{}/{name}", self.mirror.trim_end_matches('/'));
            let fetched = fetch::fetch(&url, &part, progress)?;
            progress.step("verifying");
            if let Err(e) = checksums::verify(&part, sums, |n| progress.at(n)) {
                // Resuming a damaged file would only extend the damage.
                let _ = std::fs::remove_file(&part);
                return Err(format!("{e}; it was deleted, and the next run downloads it again"));
            }
            std::fs::rename(&part, &tarball).map_err(|e| format!("{}: cannot rename: {e}", part.display()))?;
            (fetched.resumed_from, fetched.total - fetched.resumed_from)
        };
        progress.step("unpacking");
        let record = self.checksums.lines_for(&name);
        let files = extract::unpack_subset(&tarball, self.root, subset, &record, &|n| progress.at(n))?;
        self.remove_tarball(&tarball)?;
        Ok(Outcome::Unpacked {
            resumed_from,
            downloaded,
            files,
        })
    }

    /// `target` exists: fine if its record agrees with the sums in use, else an error that
    /// leaves it alone.
    fn check_finished(&self, target: &Path, name: &str) -> Result<(), String> {
        let record_path = target.join(extract::RECORD);
        let Ok(text) = read_text_bounded(&record_path, limits::SMALL_TEXT, "download record") else {
            return Err(format!(
                "{}: already exists and was not unpacked by prunelab; move it away to download it again",
                target.display()
            ));
        };
        let recorded = Checksums::parse(&text, &record_path.display().to_string())?;
        if recorded.agrees(self.checksums, name) {
            Ok(())
        } else {
            Err(format!(
                "{}: was unpacked from a tarball whose checksums differ from those {} lists; \
                 move it away to download it again",
                target.display(),
                self.checksums_source
            ))
        }
    }

    /// Removes an unpacked subset's tarball, unless asked to keep it.
    fn remove_tarball(&self, tarball: &Path) -> Result<(), String> {
        if self.keep_tarballs {
            return Ok(());
        }
        match std::fs::remove_file(tarball) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(format!("{}: cannot remove: {e}", tarball.display()))
            }
            _ => Ok(()),
        }
    }
}
