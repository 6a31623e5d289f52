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
    fn length(&self, total: u64);
    /// Bytes of the whole file on disk so far.
    fn at(&self, bytes: u64);
}

/// Downloads `url` into `part`, continuing from the bytes it already holds. The server's
/// answer to a resume must be exactly the rest of the file (`206` from the byte asked for to
/// the end), or `416` with the length `part` already has; anything else (a whole file, a
/// different range, an error page from a proxy) is refused and `part` kept as it was, since a
/// wrong answer here would cost gigabytes. Every response must state its length, which bounds
/// what is written. Bytes are flushed to disk as they arrive: an interrupted download keeps
/// what it had.
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
    let content_range = header("content-range");
    let start_over = || format!("delete {} to download from the start", part.display());
    let resumed_from = match status {
        206 => {
            let range = content_range.as_deref().and_then(ContentRange::parse);
            let whole_rest = range.is_some_and(|r| {
                r.start == have && r.total.is_none_or(|t| r.end + 1 == t) && content_length == Some(r.end + 1 - r.start)
            });
            if !whole_rest {
                return Err(format!(
                    "{url}: asked for the bytes from {have} to the end, the server sent {} ({} bytes); {}",
                    content_range.as_deref().unwrap_or("no Content-Range"),
                    content_length.map_or("unstated".into(), |n| n.to_string()),
                    start_over()
                ));
            }
            have
        }
        200 if have > 0 => {
            return Err(format!(
                "{url}: the server ignored the request to continue from byte {have} and sent the whole file; {}",
                start_over()
            ));
        }
        200 => 0,
        416 if have > 0 => {
            // Nothing past the end: whole, if the server's length is the one on disk.
            let total = content_range.as_deref().and_then(ContentRange::parse_unsatisfied);
            if total != Some(have) {
                return Err(format!(
                    "{url}: the server refused the range from byte {have} ({}); {}",
                    content_range.as_deref().unwrap_or("no Content-Range"),
                    start_over()
                ));
            }
            progress.length(have);
            progress.at(have);
            return Ok(Fetched {
                resumed_from: have,
                total: have,
            });
        }
        404 => return Err(format!("{url}: not found (HTTP 404); is --mirror right?")),
        _ => return Err(format!("{url}: the server answered HTTP {status}")),
    };
    let Some(length) = content_length else {
        return Err(format!(
            "{url}: the server did not say how long the file is (no Content-Length)"
        ));
    };
    progress.length(length + resumed_from);
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
    if total != resumed_from + length {
        return Err(format!(
            "{url}: the server promised {} bytes and sent {}; run the command again to resume",
            resumed_from + length,
            total
        ));
    }
    Ok(Fetched { resumed_from, total })
}

/// A `Content-Range: bytes START-END/TOTAL` header (TOTAL may be `*`, unknown).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct ContentRange {
    start: u64,
    end: u64,
    total: Option<u64>,
}

impl ContentRange {
    fn parse(value: &str) -> Option<Self> {
        let (range, total) = value.strip_prefix("bytes ")?.split_once('/')?;
        let (start, end) = range.split_once('-')?;
        let range = Self {
            start: start.trim().parse().ok()?,
            end: end.trim().parse().ok()?,
            total: match total.trim() {
                "*" => None,
                t => Some(t.parse().ok()?),
            },
        };
        (range.start <= range.end).then_some(range)
    }

    /// The length in a 416's `Content-Range: bytes */TOTAL`.
    fn parse_unsatisfied(value: &str) -> Option<u64> {
        value.strip_prefix("bytes */")?.trim().parse().ok()
    }
}

#[cfg(test)]
mod tests {
    use super::ContentRange;

    #[test]
    fn content_ranges_are_read_whole_or_not_at_all() {
        let range = |start, end, total| Some(ContentRange { start, end, total });
        assert_eq!(ContentRange::parse("bytes 100-199/200"), range(100, 199, Some(200)));
        assert_eq!(ContentRange::parse("bytes 100-199/*"), range(100, 199, None));
        assert_eq!(ContentRange::parse("bytes 200-100/300"), None);
        assert_eq!(ContentRange::parse("bytes */200"), None);
        assert_eq!(ContentRange::parse("items 1-2/3"), None);
        assert_eq!(ContentRange::parse_unsatisfied("bytes */200"), Some(200));
    }
}
