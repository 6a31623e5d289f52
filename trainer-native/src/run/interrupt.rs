//! Ctrl-C (SIGINT) and SIGTERM ask a run to stop; the training loop finishes its step, saves a
//! checkpoint and exits, instead of dying mid-write.
//!
//! The handler only sets a flag (the one thing a signal handler may safely do); the loop polls
//! it between steps. libc directly, because a signal crate would pull in dependencies that
//! change the feature set of half the build.

use std::sync::atomic::{AtomicBool, Ordering};

static REQUESTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_signal: libc::c_int) {
    REQUESTED.store(true, Ordering::SeqCst);
}

/// Installs the handler for SIGINT and SIGTERM.
pub fn install() -> Result<(), String> {
    let handler = on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t;
    for signal in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: `on_signal` is async-signal-safe: it performs one atomic store.
        if unsafe { libc::signal(signal, handler) } == libc::SIG_ERR {
            return Err(format!("cannot install the handler for signal {signal}"));
        }
    }
    Ok(())
}

pub fn requested() -> bool {
    REQUESTED.load(Ordering::SeqCst)
}
