//! `prunelab data download librispeech`: LibriSpeech fetched, verified and unpacked by one
//! command, where `prunelab train --librispeech ROOT` reads it (see `data::download`).

use std::path::PathBuf;

use clap::{Args, Subcommand, ValueEnum};
use indicatif::ProgressBar;
use prunelab_engine::bounded_read::{limits, read_text_bounded};

use crate::data::download::{
    Checksums, Download, FetchProgress, LIBRISPEECH_SUBSETS, LIBRISPEECH_SUMS, OPENSLR, Outcome, Progress,
};
use crate::progress;

#[derive(Args)]
pub struct DataArgs {
    #[command(subcommand)]
    command: DataCommand,
}

#[derive(Subcommand)]
enum DataCommand {
    /// Download a corpus: fetch its tarballs (resuming interrupted downloads), verify their
    /// checksums, unpack them. Running it again verifies what is there and downloads nothing.
    Download(DownloadArgs),
}

#[derive(Clone, Copy, ValueEnum)]
enum Corpus {
    /// LibriSpeech (OpenSLR 12), read by `prunelab train --librispeech ROOT`.
    Librispeech,
}

#[derive(Args)]
struct DownloadArgs {
    corpus: Corpus,
    /// Comma-separated subsets: dev-clean, dev-other, test-clean, test-other, train-clean-100,
    /// train-clean-360, train-other-500 (6.3 GB for train-clean-100, 60 GB for all).
    #[arg(long, value_delimiter = ',', default_value = "dev-clean,test-clean,train-clean-100")]
    subsets: Vec<String>,
    /// The root directory: each subset is unpacked to ROOT/<subset>, as `--librispeech ROOT`
    /// expects.
    #[arg(long)]
    to: PathBuf,
    /// Where the tarballs are (`<URL>/<subset>.tar.gz`); OpenSLR's mirrors include
    /// https://us.openslr.org/resources/12 and https://openslr.elda.org/resources/12.
    #[arg(long, default_value = OPENSLR)]
    mirror: String,
    /// A checksum list (`<sum>  <tarball name>` lines, MD5 or SHA-256, as md5sum or sha256sum
    /// write them) used instead of the one shipped with Prunelab.
    #[arg(long)]
    checksums: Option<PathBuf>,
    /// Keep each tarball after unpacking it (under ROOT/.prunelab-download/).
    #[arg(long)]
    keep_tarballs: bool,
}

pub fn run(args: DataArgs) -> Result<(), String> {
    match args.command {
        DataCommand::Download(download) => match download.corpus {
            Corpus::Librispeech => download_librispeech(download),
        },
    }
}

fn download_librispeech(args: DownloadArgs) -> Result<(), String> {
    let (checksums, source) = match &args.checksums {
        Some(path) => {
            let text = read_text_bounded(path, limits::SMALL_TEXT, "checksum list").map_err(|e| e.to_string())?;
            (
                Checksums::parse(&text, &path.display().to_string())?,
                path.display().to_string(),
            )
        }
        None => (
            Checksums::parse(LIBRISPEECH_SUMS, "the shipped checksums")?,
            "the shipped checksums".to_string(),
        ),
    };
    for subset in &args.subsets {
        if !LIBRISPEECH_SUBSETS.contains(&subset.as_str()) {
            return Err(format!(
                "--subsets: {subset:?} is not a LibriSpeech subset (one of {})",
                LIBRISPEECH_SUBSETS.join(", ")
            ));
        }
    }
    std::fs::create_dir_all(&args.to).map_err(|e| format!("{}: cannot create: {e}", args.to.display()))?;
    let download = Download {
        root: &args.to,
        mirror: &args.mirror,
        checksums: &checksums,
        checksums_source: &source,
        keep_tarballs: args.keep_tarballs,
    };
    let mut failed = Vec::new();
    for subset in &args.subsets {
        let bar = Bar {
            bar: progress::bytes(subset.clone()),
            subset,
        };
        let outcome = download.subset(subset, &bar);
        bar.bar.finish_and_clear();
        match outcome {
            Ok(Outcome::AlreadyThere) => say!("{subset}: already downloaded and verified; nothing to do"),
            Ok(Outcome::Unpacked {
                resumed_from,
                downloaded,
                files,
            }) => {
                let resumed = if resumed_from > 0 {
                    format!(" (resumed after {resumed_from} bytes)")
                } else {
                    String::new()
                };
                say!(
                    "{subset}: {downloaded} bytes downloaded{resumed}, checksums verified, {files} files unpacked to {}",
                    args.to.join(subset).display()
                );
            }
            Err(e) => {
                tell!("error: {subset}: {e}");
                failed.push(subset.as_str());
            }
        }
    }
    if failed.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "{} of {} subsets failed: {}",
            failed.len(),
            args.subsets.len(),
            failed.join(", ")
        ))
    }
}

/// One subset's byte bar, its message naming the step.
struct Bar<'a> {
    bar: ProgressBar,
    subset: &'a str,
}

impl FetchProgress for Bar<'_> {
    fn length(&self, total: u64) {
        self.bar.set_length(total);
    }

    fn at(&self, bytes: u64) {
        self.bar.set_position(bytes);
    }
}

impl Progress for Bar<'_> {
    fn step(&self, what: &str) {
        self.bar.set_message(format!("{} · {what}", self.subset));
        self.bar.set_position(0);
    }
}
