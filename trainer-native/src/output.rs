//! Writing to the terminal without panicking. `println!` and `eprintln!` panic when a write
//! fails (standard output sent to a full disk, or into a pipe whose reader has gone), so the
//! CLI writes through these instead: a failed report line ends the command with an error and
//! a non-zero status; a failed progress or warning line on standard error is dropped, because
//! there is nowhere left to say anything.

use std::fmt;
use std::io::Write;

/// Writes one line of the command's output to standard output.
pub fn stdout_line(line: fmt::Arguments) -> Result<(), String> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{line}").map_err(|e| format!("cannot write to standard output: {e}"))
}

/// Writes one line of progress, a warning or an error to standard error, best effort.
pub fn stderr_line(line: fmt::Arguments) {
    let _ = writeln!(std::io::stderr().lock(), "{line}");
}

/// `println!` that returns the write error from the enclosing function (whose error type is
/// `String`) instead of panicking.
macro_rules! say {
    ($($arg:tt)*) => {
        $crate::output::stdout_line(format_args!($($arg)*))?
    };
}

/// `eprintln!` that never panics.
macro_rules! tell {
    ($($arg:tt)*) => {
        $crate::output::stderr_line(format_args!($($arg)*))
    };
}
