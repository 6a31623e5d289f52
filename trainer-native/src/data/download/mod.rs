//! `prunelab data download librispeech`: fetches LibriSpeech's tarballs, resumes an interrupted
//! download with a range request, checks each tarball against its published checksums and
//! unpacks it where `prunelab train --librispeech ROOT` looks. A second run finds the record of
//! each finished subset and downloads nothing.
//!
//! Under `ROOT/.prunelab-download/`: `<subset>.tar.gz.part` while downloading, `<subset>.tar.gz`
//! once verified (until unpacked, or kept with `--keep-tarballs`), and `<subset>.verified`, the
//! sums it was checked against, written last: its presence is what "finished" means.

mod checksums;
mod extract;
mod fetch;

use std::path::{Path, PathBuf};

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
    fn records(&self) -> PathBuf {
        self.root.join(".prunelab-download")
    }

    /// Downloads, verifies and unpacks `subset`, unless a record says that was done.
    pub fn subset(&self, subset: &str, progress: &dyn Progress) -> Result<Outcome, String> {
        let name = format!("{subset}.tar.gz");
        let sums = self
            .checksums
            .of(&name)
            .ok_or_else(|| format!("{name}: no checksum for it in {}", self.checksums_source))?;
        let records = self.records();
        let record = records.join(format!("{subset}.verified"));
        let target = self.root.join(subset);
        if let Ok(recorded) = std::fs::read_to_string(&record) {
            if recorded == self.checksums.lines_for(&name) && target.is_dir() {
                return Ok(Outcome::AlreadyThere);
            }
            if target.exists() {
                return Err(format!(
                    "{}: was unpacked from a tarball with other checksums than {} lists; \
                     move it away to download it again",
                    target.display(),
                    self.checksums_source
                ));
            }
        } else if target.exists() && records.join(&name).is_file() {
            // Unpacked and moved into place, then interrupted before the record was written:
            // the move was the last step, so the subset is whole.
            write_record(&record, &self.checksums.lines_for(&name))?;
            if !self.keep_tarballs {
                let tarball = records.join(&name);
                std::fs::remove_file(&tarball).map_err(|e| format!("{}: cannot remove: {e}", tarball.display()))?;
            }
            return Ok(Outcome::AlreadyThere);
        } else if target.exists() {
            return Err(format!(
                "{}: already exists and was not unpacked by prunelab; move it away to download it again",
                target.display()
            ));
        }
        std::fs::create_dir_all(&records).map_err(|e| format!("{}: cannot create: {e}", records.display()))?;
        let tarball = records.join(&name);
        let (resumed_from, downloaded) = if tarball.is_file() {
            // Verified and renamed by an earlier attempt that did not finish unpacking.
            progress.step("verifying");
            checksums::verify(&tarball, sums, |n| progress.at(n))?;
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
        let files = extract::unpack_subset(&tarball, self.root, subset, &|n| progress.at(n))?;
        write_record(&record, &self.checksums.lines_for(&name))?;
        if !self.keep_tarballs {
            std::fs::remove_file(&tarball).map_err(|e| format!("{}: cannot remove: {e}", tarball.display()))?;
        }
        Ok(Outcome::Unpacked {
            resumed_from,
            downloaded,
            files,
        })
    }
}

/// Writes the record of a finished subset through a temporary file, so that a crash leaves
/// either no record or a whole one.
fn write_record(record: &Path, text: &str) -> Result<(), String> {
    let temporary = record.with_extension("verified.tmp");
    std::fs::write(&temporary, text).map_err(|e| format!("{}: cannot write: {e}", temporary.display()))?;
    std::fs::rename(&temporary, record).map_err(|e| format!("{}: cannot write: {e}", record.display()))
}
