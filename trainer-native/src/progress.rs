//! Progress bars for long commands, on standard error. They are drawn only when standard error
//! is a terminal (indicatif draws nothing otherwise) and `--quiet` was not given, so logs and
//! pipes get the command's own lines and nothing else.

use std::sync::atomic::{AtomicBool, Ordering};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

static QUIET: AtomicBool = AtomicBool::new(false);

/// `--quiet`: no bars at all, even on a terminal.
pub fn set_quiet(quiet: bool) {
    QUIET.store(quiet, Ordering::Relaxed);
}

/// Where bars draw: standard error, or nowhere with `--quiet`.
pub fn draw_target() -> ProgressDrawTarget {
    if QUIET.load(Ordering::Relaxed) {
        ProgressDrawTarget::hidden()
    } else {
        ProgressDrawTarget::stderr()
    }
}

/// A bar over `total` items (utterances, cuts, runs), with `what` before it.
pub fn counter(total: usize, what: impl Into<String>) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(Some(total as u64), draw_target());
    bar.set_style(
        ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} · {elapsed} · eta {eta}")
            .expect("the template is valid")
            .progress_chars("=> "),
    );
    bar.set_message(what.into());
    bar
}

/// A bar over bytes (a download, a checksum), its length set once known.
pub fn bytes(what: impl Into<String>) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(None, draw_target());
    bar.set_style(
        ProgressStyle::with_template("{msg} [{bar:30}] {bytes}/{total_bytes} · {bytes_per_sec} · eta {eta}")
            .expect("the template is valid")
            .progress_chars("=> "),
    );
    bar.set_message(what.into());
    bar
}
