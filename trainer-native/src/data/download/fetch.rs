//! A resumable HTTP download: bytes go to a `.part` file, and a later attempt asks the server
//! for the rest with a range request (`Range: bytes=N-`) instead of starting again.

use std::fs::OpenOptions;
use std::io::{Read, Write};
use std::path::Path;
use std::time::Duration;

/// How an attempt went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fetched {
    /// Bytes the `.part` file held before this attempt and the server agreed to continue from.
    pub resumed_from: u64,
    /// Bytes the file holds now.
    pub total: u64,
}

/// What a download reports while it runs.
pub trait FetchProgress {
    /// The length of the whole file, once the server has said it.
    fn length(&self, total: Option<u64>);
    /// Bytes of the whole file on disk so far.
    fn at(&self, bytes: u64);
}

/// Downloads `url` into `part`, continuing from the bytes it already holds. A server that
/// ignores the range sends the whole file, which then replaces the partial one; one that
/// answers 416 (range not satisfiable) has nothing past the end, so the file is taken as
/// whole and left for the checksum to judge. Bytes are flushed to disk as they arrive: an
/// interrupted download keeps what it had.
pub fn fetch(url: &str, part: &Path, progress: &dyn FetchProgress) -> Result<Fetched, String> {
    let have = std::fs::metadata(part).map(|m| m.len()).unwrap_or(0);
    let agent = ureq::Agent::new_with_config(
        ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_connect(Some(Duration::from_secs(30)))
            // A stalled connection fails after a minute without a byte, and the next run resumes.
            .timeout_per_read(Some(Duration::from_secs(60)))
            .user_agent(concat!("prunelab/", env!("CARGO_PKG_VERSION")))
            .build(),
    );
    let mut request = agent.get(url);
    if have > 0 {
        request = request.header("Range", format!("bytes={have}-"));
    }
    let response = request.call().map_err(|e| format!("{url}: {e}"))?;
    let status = response.status().as_u16();
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let content_length = header("content-length").and_then(|v| v.parse::<u64>().ok());
    let resumed_from = match status {
        206 => {
            let start = header("content-range").and_then(|v| range_start(&v));
            if start != Some(have) {
                return Err(format!(
                    "{url}: asked to continue from byte {have}, the server answered with {}; \
                     delete {} to download from the start",
                    header("content-range").unwrap_or_else(|| "no Content-Range".into()),
                    part.display()
                ));
            }
            have
        }
        200 => 0,
        416 if have > 0 => {
            progress.length(Some(have));
            progress.at(have);
            return Ok(Fetched {
                resumed_from: have,
                total: have,
            });
        }
        404 => return Err(format!("{url}: not found (HTTP 404); is --mirror right?")),
        _ => return Err(format!("{url}: the server answered HTTP {status}")),
    };
    progress.length(content_length.map(|n| n + resumed_from));
    let mut file = OpenOptions::new()
        .create(true)
        .write(true)
        .append(resumed_from > 0)
        .truncate(resumed_from == 0)
        .open(part)
        .map_err(|e| format!("{}: cannot write: {e}", part.display()))?;
    let mut body = response.into_body().into_reader();
    let mut buffer = vec![0u8; 1 << 16];
    let mut total = resumed_from;
    progress.at(total);
    loop {
        let n = body.read(&mut buffer).map_err(|e| {
            format!("{url}: the download broke off after {total} bytes ({e}); run the command again to resume")
        })?;
        if n == 0 {
            break;
        }
        file.write_all(&buffer[..n])
            .map_err(|e| format!("{}: cannot write: {e}", part.display()))?;
        total += n as u64;
        progress.at(total);
    }
    file.sync_all()
        .map_err(|e| format!("{}: cannot write: {e}", part.display()))?;
    if let Some(length) = content_length
        && total != resumed_from + length
    {
        return Err(format!(
            "{url}: the server promised {} bytes and sent {}; run the command again to resume",
            resumed_from + length,
            total
        ));
    }
    Ok(Fetched { resumed_from, total })
}

/// The first byte of a `Content-Range: bytes START-END/TOTAL` header.
fn range_start(value: &str) -> Option<u64> {
    value.strip_prefix("bytes ")?.split('-').next()?.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::range_start;

    #[test]
    fn content_range_gives_its_start() {
        assert_eq!(range_start("bytes 100-199/200"), Some(100));
        assert_eq!(range_start("bytes */200"), None);
        assert_eq!(range_start("items 1-2/3"), None);
    }
}
