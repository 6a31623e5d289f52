//! `prunelab data download librispeech` against a loopback HTTP server that serves a small
//! tarball in LibriSpeech's format (written by `corpus fixture`, packed with `tar`): a download
//! cut off half-way resumes with a range request; a flipped byte fails verification by name
//! and unpacks nothing; a second run downloads nothing.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Arc, Mutex};

use common::{scratch, stderr};
use sha2::{Digest, Sha256};

fn prunelab(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_prunelab"))
        .args(args)
        .output()
        .unwrap()
}

/// What the server saw: each request's path and Range header.
type Log = Arc<Mutex<Vec<(String, Option<String>)>>>;

/// How the test server misbehaves.
#[derive(Clone, Copy, PartialEq)]
enum Server {
    /// Honours `Range: bytes=N-`.
    Honest,
    /// Honest, but the first response promises the whole file and sends half of it.
    CutFirst,
    /// Like `CutFirst`, then ignores ranges: every later answer is the whole file (200).
    CutFirstThenIgnoreRanges,
    /// Honest, but the first response stalls after half the file, its connection held open
    /// (so the client can be killed in the middle of it).
    StallFirst,
}

/// Serves `tarball` as `/dev-clean.tar.gz` on a loopback port, behaving as `server` says.
fn serve(tarball: Vec<u8>, server: Server) -> (String, Log) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let log: Log = Arc::default();
    let seen = log.clone();
    std::thread::spawn(move || {
        let mut cut = server != Server::Honest;
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut request_line = String::new();
            reader.read_line(&mut request_line).unwrap();
            let path = request_line.split_whitespace().nth(1).unwrap_or_default().to_string();
            let mut range = None;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some((name, value)) = line.split_once(':')
                    && name.eq_ignore_ascii_case("range")
                {
                    range = Some(value.trim().to_string());
                }
            }
            seen.lock().unwrap().push((path.clone(), range.clone()));
            if path != "/dev-clean.tar.gz" {
                let _ = stream.write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
                continue;
            }
            let start = range
                .as_deref()
                .filter(|_| server != Server::CutFirstThenIgnoreRanges || cut)
                .and_then(|r| r.strip_prefix("bytes="))
                .and_then(|r| r.trim_end_matches('-').parse::<usize>().ok())
                .unwrap_or(0);
            let body = &tarball[start..];
            let head = if start > 0 {
                format!(
                    "HTTP/1.1 206 Partial Content\r\nContent-Range: bytes {start}-{}/{}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    tarball.len() - 1,
                    tarball.len(),
                    body.len()
                )
            } else {
                format!(
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    body.len()
                )
            };
            let sent = if cut { &body[..body.len() / 2] } else { body };
            let stall = cut && server == Server::StallFirst;
            cut = false;
            let _ = stream.write_all(head.as_bytes());
            let _ = stream.write_all(sent);
            let _ = stream.flush();
            if stall {
                // Held open on another thread, so the next request is served meanwhile.
                std::thread::spawn(move || {
                    std::thread::sleep(std::time::Duration::from_secs(120));
                    drop(stream);
                });
            }
        }
    });
    (url, log)
}

/// A LibriSpeech-format tarball of the built-in corpus's dev split, its SHA-256 list, and the
/// tree it was packed from.
fn tarball(dir: &Path) -> (Vec<u8>, PathBuf, PathBuf) {
    let source = dir.join("source");
    let tree = source.join("LibriSpeech");
    let made = prunelab(&[
        "corpus",
        "fixture",
        "--out",
        tree.to_str().unwrap(),
        "--per-split",
        "24",
    ]);
    assert!(made.status.success(), "{}", stderr(&made));
    std::fs::remove_dir_all(tree.join("train-clean-100")).unwrap();
    std::fs::remove_dir_all(tree.join("test-clean")).unwrap();
    std::fs::write(tree.join("README.TXT"), "a stand-in for LibriSpeech's README\n").unwrap();
    let file = dir.join("dev-clean.tar.gz");
    let packed = Command::new("tar")
        .args([
            "-C",
            source.to_str().unwrap(),
            "-czf",
            file.to_str().unwrap(),
            "LibriSpeech",
        ])
        .status()
        .unwrap();
    assert!(packed.success());
    let bytes = std::fs::read(&file).unwrap();
    let sums = dir.join("sums.txt");
    let digest: String = Sha256::digest(&bytes).iter().map(|b| format!("{b:02x}")).collect();
    std::fs::write(&sums, format!("{digest}  dev-clean.tar.gz\n")).unwrap();
    (bytes, sums, tree.join("dev-clean"))
}

/// `prunelab data download librispeech` of dev-clean from `url` into `root`, checked against `sums`.
fn download_command(root: &Path, url: &str, sums: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_prunelab"));
    command
        .args(["data", "download", "librispeech", "--subsets", "dev-clean", "--to"])
        .arg(root)
        .args(["--mirror", url, "--checksums"])
        .arg(sums);
    command
}

fn download(root: &Path, url: &str, sums: &Path) -> Output {
    download_command(root, url, sums).output().unwrap()
}

/// Every file under `dir`, relative to it, with its bytes.
fn files(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(at) = pending.pop() {
        for entry in std::fs::read_dir(&at).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                pending.push(path);
            } else {
                out.push((
                    path.strip_prefix(dir).unwrap().to_path_buf(),
                    std::fs::read(&path).unwrap(),
                ));
            }
        }
    }
    out.sort();
    out
}

#[test]
fn a_download_cut_off_half_way_resumes_and_a_second_run_fetches_nothing() {
    let dir = scratch("download-resume");
    let (bytes, sums, source) = tarball(&dir);
    let (url, log) = serve(bytes.clone(), Server::CutFirst);
    let root = dir.join("root");

    let cut = download(&root, &url, &sums);
    assert!(!cut.status.success(), "a broken-off download reported success");
    assert!(
        stderr(&cut).contains("run the command again to resume"),
        "{}",
        stderr(&cut)
    );
    assert!(
        !root.join("dev-clean").exists(),
        "a half-downloaded subset was unpacked"
    );
    let part = root.join(".prunelab-download/dev-clean.tar.gz.part");
    let kept = std::fs::metadata(&part).map(|m| m.len()).unwrap_or(0);
    assert_eq!(
        kept,
        bytes.len() as u64 / 2,
        "the bytes received before the cut are kept"
    );

    let resumed = download(&root, &url, &sums);
    assert!(resumed.status.success(), "{}", stderr(&resumed));
    let said = String::from_utf8_lossy(&resumed.stdout);
    assert!(said.contains(&format!("resumed after {kept} bytes")), "{said}");
    let requests = log.lock().unwrap().clone();
    assert_eq!(requests.len(), 2, "{requests:?}");
    assert_eq!(requests[1].1.as_deref(), Some(format!("bytes={kept}-").as_str()));
    let mut unpacked = files(&root.join("dev-clean"));
    let record = unpacked
        .iter()
        .position(|(path, _)| path == Path::new(".prunelab-verified"));
    let (_, record) = unpacked.remove(record.expect("the finished subset holds its record"));
    assert_eq!(
        record,
        std::fs::read(&sums).unwrap(),
        "the record is the sums the tarball passed"
    );
    assert_eq!(unpacked, files(&source), "unpacked tree differs from the packed one");
    assert!(root.join("README.TXT").is_file());
    assert!(
        !part.exists() && !root.join(".prunelab-download/dev-clean.tar.gz").exists(),
        "tarball left behind"
    );

    let again = download(&root, &url, &sums);
    assert!(again.status.success(), "{}", stderr(&again));
    assert!(String::from_utf8_lossy(&again.stdout).contains("already downloaded and verified"));
    assert_eq!(log.lock().unwrap().len(), 2, "the second run downloaded");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_flipped_byte_fails_verification_by_name_and_unpacks_nothing() {
    let dir = scratch("download-flipped");
    let (mut bytes, sums, _) = tarball(&dir);
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x20;
    let (url, _) = serve(bytes, Server::Honest);
    let root = dir.join("root");
    let failed = download(&root, &url, &sums);
    assert!(!failed.status.success());
    let error = stderr(&failed);
    assert!(
        error.contains("dev-clean.tar.gz") && error.contains("SHA-256"),
        "{error}"
    );
    let left: Vec<_> = files(&root).into_iter().map(|(path, _)| path).collect();
    assert!(left.is_empty(), "files left behind: {left:?}");

    let unknown = prunelab(&["data", "download", "librispeech", "--subsets", "dev-cleen", "--to", "x"]);
    assert!(
        stderr(&unknown).contains("\"dev-cleen\" is not a LibriSpeech subset"),
        "{}",
        stderr(&unknown)
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Bars are drawn on a terminal (here a pseudo-terminal from util-linux's `script`), not into a
/// pipe, and not with `--quiet` even on a terminal.
#[test]
fn progress_bars_only_on_a_terminal_and_never_with_quiet() {
    if Command::new("script").arg("--version").output().is_err() {
        panic!("util-linux's `script` is needed to give the command a terminal");
    }
    let dir = scratch("download-bars");
    let (bytes, sums, _) = tarball(&dir);
    let (url, _) = serve(bytes, Server::Honest);
    let bin = env!("CARGO_BIN_EXE_prunelab");
    let on_terminal = |root: &str, quiet: &str| {
        let command = format!(
            "{bin} {quiet} data download librispeech --subsets dev-clean --to {} --mirror {url} --checksums {}",
            dir.join(root).display(),
            sums.display()
        );
        let output = Command::new("script")
            .args(["-qec", &command, "/dev/null"])
            .output()
            .unwrap();
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stdout));
        String::from_utf8_lossy(&output.stdout).into_owned()
    };
    assert!(
        on_terminal("a", "").contains("dev-clean · downloading ["),
        "no bar on a terminal"
    );
    let quiet = on_terminal("b", "--quiet");
    assert!(!quiet.contains('[') && quiet.contains("checksums verified"), "{quiet}");
    let piped = download(&dir.join("c"), &url, &sums);
    assert!(piped.status.success());
    assert!(
        !stderr(&piped).contains('['),
        "a bar was drawn into a pipe: {}",
        stderr(&piped)
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A server that answers a resume with the whole file (as a proxy's error page would, or a
/// server without range support) is refused, and the bytes already downloaded are kept.
#[test]
fn a_server_that_ignores_the_range_does_not_cost_the_bytes_already_there() {
    let dir = scratch("download-no-range");
    let (bytes, sums, _) = tarball(&dir);
    let (url, _) = serve(bytes, Server::CutFirstThenIgnoreRanges);
    let root = dir.join("root");
    assert!(!download(&root, &url, &sums).status.success());
    let part = root.join(".prunelab-download/dev-clean.tar.gz.part");
    let half = std::fs::read(&part).unwrap();
    let refused = download(&root, &url, &sums);
    assert!(!refused.status.success());
    let error = stderr(&refused);
    assert!(
        error.contains("ignored the request to continue") && error.contains("delete"),
        "{error}"
    );
    assert_eq!(std::fs::read(&part).unwrap(), half, "the partial download was touched");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A download killed (SIGKILL) half-way through keeps what it had received, and the next run
/// resumes from there with a range request.
#[test]
fn a_download_killed_half_way_resumes_where_it_stopped() {
    let dir = scratch("download-killed");
    let (bytes, sums, _) = tarball(&dir);
    let (url, log) = serve(bytes.clone(), Server::StallFirst);
    let root = dir.join("root");
    let mut child = download_command(&root, &url, &sums)
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let part = root.join(".prunelab-download/dev-clean.tar.gz.part");
    let half = bytes.len() as u64 / 2;
    let waited = std::time::Instant::now();
    while std::fs::metadata(&part).map(|m| m.len()).unwrap_or(0) < half {
        assert!(waited.elapsed().as_secs() < 60, "the first half never arrived");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(!root.join("dev-clean").exists());

    let resumed = download(&root, &url, &sums);
    assert!(resumed.status.success(), "{}", stderr(&resumed));
    assert!(String::from_utf8_lossy(&resumed.stdout).contains(&format!("resumed after {half} bytes")));
    assert_eq!(
        log.lock().unwrap()[1].1.as_deref(),
        Some(format!("bytes={half}-").as_str())
    );
    assert!(root.join("dev-clean").join(".prunelab-verified").is_file());
    std::fs::remove_dir_all(&dir).unwrap();
}
