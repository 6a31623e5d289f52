//! Reading a file a person names, with bounds: only a regular file is opened (a FIFO with no
//! writer blocks the opener forever, and a device such as /dev/zero never ends), and only up to
//! the size its format can have, checked before a byte is read. A wrong path then costs an
//! error naming it, not a hang or the machine's memory.

use std::io::Read;
use std::path::Path;

/// A mebibyte, for limits stated by the formats' readers.
pub const MIB: u64 = 1 << 20;
const GIB: u64 = 1 << 30;

/// The largest file each format may be. Generous for any real file, small enough that a wrong
/// one is refused before it is read.
pub mod limits {
    use super::{GIB, MIB};
    /// A checkpoint (`medium`, optimiser and gates included, is ~0.35 GB).
    pub const CHECKPOINT: u64 = 4 * GIB;
    /// An export's safetensors weights.
    pub const EXPORT_WEIGHTS: u64 = 2 * GIB;
    /// A JSON file Prunelab writes (manifest, run record, summary).
    pub const JSON: u64 = 64 * MIB;
    /// A run trace (every unit's retention at each snapshot).
    pub const TRACE: u64 = GIB;
    /// A run's metrics.jsonl.
    pub const METRICS: u64 = GIB;
    /// A corpus pack (the built-in corpus is ~19 MB).
    pub const CORPUS_PACK: u64 = 4 * GIB;
    /// A transcript or hypothesis file (`<utt-id> WORDS…` lines; a LibriSpeech chapter's is a
    /// few kB, a hypothesis file for 100,000 utterances ~20 MB).
    pub const TRANSCRIPTS: u64 = 256 * MIB;
    /// A checksum list or a download record.
    pub const SMALL_TEXT: u64 = 16 * MIB;
    /// A `.npy` feature matrix.
    pub const FEATURES: u64 = 2 * GIB;
    /// A TrueType font.
    pub const FONT: u64 = 64 * MIB;
}

/// A file not read, and why; shown as "PATH: problem".
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {problem}")]
pub struct ReadError {
    pub path: String,
    pub problem: String,
}

fn refuse(path: &Path, problem: String) -> ReadError {
    ReadError {
        path: path.display().to_string(),
        problem,
    }
}

/// `path`'s metadata when it is a regular file (symbolic links followed); otherwise an error
/// saying what it is. For readers that stream a file rather than read it whole.
pub fn regular_file(path: &Path) -> Result<std::fs::Metadata, ReadError> {
    let metadata = std::fs::metadata(path).map_err(|e| refuse(path, format!("cannot read: {e}")))?;
    if metadata.is_dir() {
        return Err(refuse(path, "is a directory, not a file".into()));
    }
    if !metadata.is_file() {
        let problem = "is a pipe, device or socket, not a regular file (reading it could block or never end)";
        return Err(refuse(path, problem.into()));
    }
    Ok(metadata)
}

/// The bytes of `path`, a regular file of at most `limit` bytes; `what` names the format in
/// the error ("checkpoint", "trace").
pub fn read_bounded(path: &Path, limit: u64, what: &str) -> Result<Vec<u8>, ReadError> {
    let size = regular_file(path)?.len();
    let too_big = |size: u64| {
        refuse(
            path,
            format!("{size} bytes, more than any {what} holds ({limit} bytes at most)"),
        )
    };
    if size > limit {
        return Err(too_big(size));
    }
    let unreadable = |e: std::io::Error| refuse(path, format!("cannot read: {e}"));
    let file = std::fs::File::open(path).map_err(unreadable)?;
    // The file may grow between the check and the read: read one byte past the limit at most.
    let mut bytes = Vec::with_capacity(size as usize);
    file.take(limit + 1).read_to_end(&mut bytes).map_err(unreadable)?;
    if bytes.len() as u64 > limit {
        return Err(too_big(bytes.len() as u64));
    }
    Ok(bytes)
}

/// [`read_bounded`] as UTF-8 text, without a leading byte-order mark.
pub fn read_text_bounded(path: &Path, limit: u64, what: &str) -> Result<String, ReadError> {
    let mut text = String::from_utf8(read_bounded(path, limit, what)?)
        .map_err(|e| refuse(path, format!("not UTF-8 text (byte {})", e.utf8_error().valid_up_to())))?;
    // A byte-order mark is not text: dropped here, once, so that no reader keeps it in a first
    // id or echoes it, invisible, in a message.
    if text.starts_with('\u{feff}') {
        text.drain(..'\u{feff}'.len_utf8());
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_regular_files_within_the_limit_are_read() {
        let dir = std::env::temp_dir().join(format!("prunelab-bounded-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("five.bin");
        std::fs::write(&file, b"12345").unwrap();
        assert_eq!(read_bounded(&file, 5, "test file").unwrap(), b"12345");
        let err = read_bounded(&file, 4, "test file").unwrap_err().to_string();
        assert!(
            err.ends_with("five.bin: 5 bytes, more than any test file holds (4 bytes at most)"),
            "{err}"
        );
        let marked = dir.join("marked.txt");
        std::fs::write(&marked, "\u{feff}id text\n").unwrap();
        assert_eq!(read_text_bounded(&marked, 100, "test file").unwrap(), "id text\n");
        let err = read_bounded(&dir, 5, "test file").unwrap_err().to_string();
        assert!(err.ends_with("is a directory, not a file"), "{err}");
        // /dev/zero never ends; reading it whole would take all memory.
        let err = read_bounded(Path::new("/dev/zero"), 5, "test file")
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("/dev/zero: is a pipe, device or socket"), "{err}");
        std::fs::write(&file, b"\xff\xfe").unwrap();
        let err = read_text_bounded(&file, 5, "test file").unwrap_err().to_string();
        assert!(err.ends_with("five.bin: not UTF-8 text (byte 0)"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
