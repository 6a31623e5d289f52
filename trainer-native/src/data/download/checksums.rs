//! Checksum lists (`<hex sum>  <file name>` lines, as md5sum and sha256sum write them) and the
//! check of a downloaded file against every sum listed for it. MD5 is what OpenSLR publishes;
//! SHA-256 is kept beside it because MD5 no longer resists a deliberate forgery.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;

use md5::Md5;
use prunelab_engine::bounded_read::regular_file;
use sha2::{Digest, Sha256};

/// One expected digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sum {
    Md5([u8; 16]),
    Sha256([u8; 32]),
}

impl Sum {
    fn kind(&self) -> &'static str {
        match self {
            Sum::Md5(_) => "MD5",
            Sum::Sha256(_) => "SHA-256",
        }
    }

    fn bytes(&self) -> &[u8] {
        match self {
            Sum::Md5(b) => b,
            Sum::Sha256(b) => b,
        }
    }
}

/// Expected sums by file name.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Checksums(BTreeMap<String, Vec<Sum>>);

impl Checksums {
    /// Parses a list; `source` names it in errors. Blank lines and `#` comments are skipped;
    /// a `*` before the name (binary mode in md5sum's output) is accepted.
    pub fn parse(text: &str, source: &str) -> Result<Self, String> {
        let mut sums: BTreeMap<String, Vec<Sum>> = BTreeMap::new();
        for (number, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let problem = |what: &str| format!("{source}: line {}: {what}", number + 1);
            let Some((hex, name)) = line.split_once(char::is_whitespace) else {
                return Err(problem("expected `<sum>  <file name>`"));
            };
            let name = name.trim_start().trim_start_matches('*');
            if name.is_empty() || name.contains('/') {
                return Err(problem("expected a plain file name after the sum"));
            }
            let sum = match hex.len() {
                32 => Sum::Md5(decode_hex(hex).ok_or_else(|| problem("the MD5 sum is not hexadecimal"))?),
                64 => Sum::Sha256(decode_hex(hex).ok_or_else(|| problem("the SHA-256 sum is not hexadecimal"))?),
                n => {
                    return Err(problem(&format!(
                        "a sum of {n} characters is neither MD5 (32) nor SHA-256 (64)"
                    )));
                }
            };
            let listed = sums.entry(name.to_string()).or_default();
            if listed.iter().any(|s| s.kind() == sum.kind() && *s != sum) {
                return Err(problem(&format!("{name} has two different {} sums", sum.kind())));
            }
            listed.push(sum);
        }
        Ok(Self(sums))
    }

    /// The sums listed for `name`, if any.
    pub fn of(&self, name: &str) -> Option<&[Sum]> {
        self.0.get(name).map(Vec::as_slice)
    }

    /// Whether `other` lists the same file `name` compatibly: every digest kind both list for
    /// it agrees, and they share at least one (one list may hold MD5 and SHA-256, the other
    /// only one of them, in any order).
    pub fn agrees(&self, other: &Checksums, name: &str) -> bool {
        let (mine, theirs) = (self.of(name).unwrap_or_default(), other.of(name).unwrap_or_default());
        let mut shared = 0;
        for sum in mine {
            if let Some(other) = theirs.iter().find(|o| o.kind() == sum.kind()) {
                if other != sum {
                    return false;
                }
                shared += 1;
            }
        }
        shared > 0
    }

    /// The list as its canonical text (one line per sum), as written beside a finished subset.
    pub fn lines_for(&self, name: &str) -> String {
        self.of(name)
            .unwrap_or_default()
            .iter()
            .map(|s| format!("{}  {name}\n", encode_hex(s.bytes())))
            .collect()
    }
}

/// Reads `path` once, computing the digests `expected` asks for, and compares them. `read`
/// is told how many bytes were read so far (for a progress bar). The error names the file,
/// the digest and both values.
pub fn verify(path: &Path, expected: &[Sum], mut read: impl FnMut(u64)) -> Result<(), String> {
    // A FIFO would block the open; anything but a regular file is refused first.
    regular_file(path).map_err(|e| e.to_string())?;
    let mut file = std::fs::File::open(path).map_err(|e| format!("{}: cannot open: {e}", path.display()))?;
    let (mut md5, mut sha256) = (Md5::new(), Sha256::new());
    let mut buffer = vec![0u8; 1 << 20];
    let mut total = 0u64;
    loop {
        let n = file
            .read(&mut buffer)
            .map_err(|e| format!("{}: cannot read: {e}", path.display()))?;
        if n == 0 {
            break;
        }
        md5.update(&buffer[..n]);
        sha256.update(&buffer[..n]);
        total += n as u64;
        read(total);
    }
    let (md5, sha256) = (md5.finalize(), sha256.finalize());
    for sum in expected {
        let actual: &[u8] = match sum {
            Sum::Md5(_) => &md5,
            Sum::Sha256(_) => &sha256,
        };
        if actual != sum.bytes() {
            return Err(format!(
                "{}: {} is {}, expected {} (the file is damaged or not the one listed)",
                path.display(),
                sum.kind(),
                encode_hex(actual),
                encode_hex(sum.bytes())
            ));
        }
    }
    Ok(())
}

fn decode_hex<const N: usize>(hex: &str) -> Option<[u8; N]> {
    let mut out = [0u8; N];
    if hex.len() != 2 * N {
        return None;
    }
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

fn encode_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The shipped list names both sums of every LibriSpeech subset.
    #[test]
    fn the_shipped_list_covers_every_subset_twice() {
        let sums = Checksums::parse(super::super::LIBRISPEECH_SUMS, "librispeech.sums").unwrap();
        for subset in super::super::LIBRISPEECH_SUBSETS {
            let listed = sums.of(&format!("{subset}.tar.gz")).unwrap_or_default();
            assert_eq!(listed.len(), 2, "{subset}");
            assert!(
                matches!(listed[0], Sum::Md5(_)) && matches!(listed[1], Sum::Sha256(_)),
                "{subset}"
            );
        }
    }

    /// Digests of "abc" from RFC 1321 and FIPS 180-2: a file that matches passes, one flipped
    /// byte fails naming the file and the digest.
    #[test]
    fn verification_compares_every_listed_digest() {
        let dir = std::env::temp_dir().join(format!("prunelab-sums-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("abc.tar.gz");
        std::fs::write(&file, b"abc").unwrap();
        let list = "900150983cd24fb0d6963f7d28e17f72  abc.tar.gz\n\
                    ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad *abc.tar.gz\n";
        let sums = Checksums::parse(list, "list").unwrap();
        verify(&file, sums.of("abc.tar.gz").unwrap(), |_| {}).unwrap();
        std::fs::write(&file, b"abd").unwrap();
        let error = verify(&file, sums.of("abc.tar.gz").unwrap(), |_| {}).unwrap_err();
        assert!(error.contains("abc.tar.gz") && error.contains("MD5"), "{error}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn lists_agree_when_their_shared_digests_do() {
        let both = Checksums::parse(super::super::LIBRISPEECH_SUMS, "shipped").unwrap();
        let sha = "76f87d090650617fca0cac8f88b9416e0ebf80350acb97b343a85fa903728ab3  dev-clean.tar.gz";
        let only_sha = Checksums::parse(sha, "one").unwrap();
        assert!(both.agrees(&only_sha, "dev-clean.tar.gz") && only_sha.agrees(&both, "dev-clean.tar.gz"));
        let other = Checksums::parse(&sha.replace("76f8", "0000"), "other").unwrap();
        assert!(!both.agrees(&other, "dev-clean.tar.gz"));
        let md5_only = Checksums::parse("42e2234ba48799c1f50f24a7926300a1  dev-clean.tar.gz", "md5").unwrap();
        assert!(!md5_only.agrees(&only_sha, "dev-clean.tar.gz"), "no digest in common");
    }

    #[test]
    fn malformed_lists_are_refused_by_line() {
        for (list, problem) in [
            ("abc  x.tar.gz", "line 1: a sum of 3 characters"),
            (
                "# c\nzz0150983cd24fb0d6963f7d28e17f72  x.tar.gz",
                "line 2: the MD5 sum is not hexadecimal",
            ),
            ("900150983cd24fb0d6963f7d28e17f72", "line 1: expected"),
            ("900150983cd24fb0d6963f7d28e17f72  ../x.tar.gz", "plain file name"),
            (
                "900150983cd24fb0d6963f7d28e17f72  x\n000150983cd24fb0d6963f7d28e17f72  x",
                "two different MD5 sums",
            ),
        ] {
            let error = Checksums::parse(list, "sums.txt").unwrap_err();
            assert!(error.starts_with("sums.txt: ") && error.contains(problem), "{error}");
        }
    }
}
