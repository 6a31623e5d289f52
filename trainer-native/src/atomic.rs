//! Crash-safe file writes: write a temporary file beside the target, flush it to disk, rename.
//! A reader sees the old file or the new one, never half of one.

use std::io::Write;
use std::path::Path;

pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), String> {
    let tmp = path.with_extension(format!("tmp-{}", std::process::id()));
    let fail = |what: &str, e: std::io::Error| format!("{}: cannot {what}: {e}", path.display());
    let mut file = std::fs::File::create(&tmp).map_err(|e| fail("create temporary file", e))?;
    file.write_all(bytes).map_err(|e| fail("write", e))?;
    file.sync_all().map_err(|e| fail("flush to disk", e))?;
    std::fs::rename(&tmp, path).map_err(|e| fail("move into place", e))
}
