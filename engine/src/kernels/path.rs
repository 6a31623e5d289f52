//! Which way the model's operations run: the fused kernels where the device has them, or
//! burn's composed operations (the reference) everywhere.
//!
//! The choice is per thread, like the dropout stream (`model::with_dropout_stream`): a front
//! door sets it once for its thread ([`set_ops_path`]: the CLI's `--ops`, the lab's `#ops=`),
//! and a test compares the two paths on one thread with [`with_ops_path`]. Threads the engine
//! starts for a step (shards) take their parent's choice.

use std::cell::Cell;
use std::fmt;
use std::str::FromStr;

use burn::prelude::*;

/// How the model's operations run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OpsPath {
    /// The fused kernels on a device that has them (a cube backend: wgpu natively and in the
    /// browser); burn's composed operations elsewhere.
    #[default]
    Fused,
    /// burn's composed operations on every device, differentiated by burn's autodiff.
    Reference,
}

impl OpsPath {
    /// Every path, in the order of [`OpsPath::NAMES`].
    pub const ALL: [OpsPath; 2] = [OpsPath::Fused, OpsPath::Reference];
    /// The names the CLI's `--ops` and the lab's `#ops=` take, and `Display` writes.
    pub const NAMES: [&'static str; 2] = ["fused", "reference"];

    pub fn name(self) -> &'static str {
        Self::NAMES[self as usize]
    }
}

impl fmt::Display for OpsPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for OpsPath {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let text = text.trim();
        match OpsPath::ALL.into_iter().find(|path| path.name() == text) {
            Some(path) => Ok(path),
            None => Err(format!(
                "'{text}' is not a way to run the model's operations (expected one of: {})",
                OpsPath::NAMES.join(", ")
            )),
        }
    }
}

thread_local! {
    static PATH: Cell<OpsPath> = const { Cell::new(OpsPath::Fused) };
}

/// Sets this thread's path; returns the one it replaces.
pub fn set_ops_path(path: OpsPath) -> OpsPath {
    PATH.with(|p| p.replace(path))
}

/// This thread's path.
pub fn ops_path() -> OpsPath {
    PATH.with(Cell::get)
}

/// Runs `work` with this thread's path set to `path`, then restores the previous one.
pub fn with_ops_path<R>(path: OpsPath, work: impl FnOnce() -> R) -> R {
    let previous = set_ops_path(path);
    let result = work();
    set_ops_path(previous);
    result
}

/// Whether tensors on `device` run the fused operations here: this thread asks for them and
/// the device's backend has them.
pub fn fuses_on(device: &Device) -> bool {
    ops_path() == OpsPath::Fused && super::runs_fused(device)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_path_reads_back_as_written_and_a_scope_restores_it() {
        for (path, name) in OpsPath::ALL.into_iter().zip(OpsPath::NAMES) {
            assert_eq!(
                (name.parse::<OpsPath>().unwrap(), path.to_string()),
                (path, name.to_string())
            );
        }
        assert_eq!("reference".parse::<OpsPath>(), Ok(OpsPath::Reference));
        let refused = "fast".parse::<OpsPath>().unwrap_err();
        assert!(refused.contains("'fast'") && refused.contains("reference"), "{refused}");
        assert_eq!(ops_path(), OpsPath::Fused);
        let inside = with_ops_path(OpsPath::Reference, ops_path);
        assert_eq!((inside, ops_path()), (OpsPath::Reference, OpsPath::Fused));
        // The CPU backend has no fused operations, whatever the thread asks for.
        assert!(!fuses_on(&Device::flex()));
    }
}
