//! The binary container every Prunelab file format uses: fixed magic bytes, a format version,
//! a JSON header and an opaque body. Formats differ only in their magic, version and header.
//!
//! ```text
//! magic       8 bytes   names the format
//! version     u32 LE    the format's schema version
//! header_len  u64 LE    length of the JSON header
//! header      JSON
//! body        bytes     whatever the header describes
//! ```

use serde::Serialize;
use serde::de::DeserializeOwned;

const PREFIX_LEN: usize = 8 + 4 + 8;

/// One file format built on the container.
#[derive(Debug, Clone, Copy)]
pub struct Format {
    pub magic: &'static [u8; 8],
    pub version: u32,
    /// What users call such a file, for error messages ("checkpoint").
    pub noun: &'static str,
}

/// Why a file could not be read; every variant names the file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ContainerError {
    #[error("{name}: not a Prunelab {noun} (bad magic bytes)")]
    BadMagic { name: String, noun: &'static str },
    #[error("{name}: {noun} version {found} is not supported (this build reads version {supported})")]
    UnsupportedVersion {
        name: String,
        noun: &'static str,
        found: u32,
        supported: u32,
    },
    #[error("{name}: {noun} is truncated ({detail})")]
    Truncated {
        name: String,
        noun: &'static str,
        detail: String,
    },
    #[error("{name}: {noun} header is malformed: {detail}")]
    BadHeader {
        name: String,
        noun: &'static str,
        detail: String,
    },
}

impl Format {
    /// Serialises `header` and appends the body parts in order.
    pub fn encode(&self, header: &impl Serialize, body: &[&[u8]]) -> Vec<u8> {
        let header = serde_json::to_vec(header).expect("headers are plain data and always serialise");
        let body_len: usize = body.iter().map(|part| part.len()).sum();
        let mut out = Vec::with_capacity(PREFIX_LEN + header.len() + body_len);
        out.extend_from_slice(self.magic);
        out.extend_from_slice(&self.version.to_le_bytes());
        out.extend_from_slice(&(header.len() as u64).to_le_bytes());
        out.extend_from_slice(&header);
        body.iter().for_each(|part| out.extend_from_slice(part));
        out
    }

    /// Checks magic and version, parses the header, and returns it with the body.
    pub fn decode<'a, H: DeserializeOwned>(
        &self,
        bytes: &'a [u8],
        name: &str,
    ) -> Result<(H, &'a [u8]), ContainerError> {
        let magic_len = bytes.len().min(8);
        if bytes.is_empty() || bytes[..magic_len] != self.magic[..magic_len] {
            return Err(ContainerError::BadMagic {
                name: name.to_string(),
                noun: self.noun,
            });
        }
        if bytes.len() < PREFIX_LEN {
            return Err(self.truncated(name, "shorter than its fixed prefix"));
        }
        let version = u32::from_le_bytes(bytes[8..12].try_into().expect("4 bytes"));
        if version != self.version {
            let (noun, supported) = (self.noun, self.version);
            return Err(ContainerError::UnsupportedVersion {
                name: name.to_string(),
                noun,
                found: version,
                supported,
            });
        }
        let header_len = u64::from_le_bytes(bytes[12..20].try_into().expect("8 bytes"));
        let header_end = usize::try_from(header_len)
            .ok()
            .and_then(|len| PREFIX_LEN.checked_add(len));
        let header_end = header_end
            .filter(|&end| end <= bytes.len())
            .ok_or_else(|| self.truncated(name, "header runs past the end"))?;
        let header =
            serde_json::from_slice(&bytes[PREFIX_LEN..header_end]).map_err(|e| self.bad_header(name, e.to_string()))?;
        Ok((header, &bytes[header_end..]))
    }

    pub fn truncated(&self, name: &str, detail: &str) -> ContainerError {
        ContainerError::Truncated {
            name: name.to_string(),
            noun: self.noun,
            detail: detail.to_string(),
        }
    }

    pub fn bad_header(&self, name: &str, detail: String) -> ContainerError {
        ContainerError::BadHeader {
            name: name.to_string(),
            noun: self.noun,
            detail,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEST: Format = Format {
        magic: b"PLTEST01",
        version: 3,
        noun: "test file",
    };

    #[test]
    fn round_trips_header_and_body() {
        let bytes = TEST.encode(&vec![1u32, 2, 3], &[b"ab", b"cd"]);
        let (header, body): (Vec<u32>, &[u8]) = TEST.decode(&bytes, "t").unwrap();
        assert_eq!((header, body), (vec![1, 2, 3], &b"abcd"[..]));
    }

    #[test]
    fn every_failure_names_the_file() {
        let bytes = TEST.encode(&"header", &[b"body"]);
        let decode = |b: &[u8]| TEST.decode::<String>(b, "f.bin").unwrap_err();
        assert_eq!(
            decode(b"GARBAGE!!!").to_string(),
            "f.bin: not a Prunelab test file (bad magic bytes)"
        );
        assert_eq!(
            decode(b"").to_string(),
            "f.bin: not a Prunelab test file (bad magic bytes)"
        );
        assert!(matches!(decode(&bytes[..10]), ContainerError::Truncated { .. }));
        assert!(matches!(decode(&bytes[..22]), ContainerError::Truncated { .. }));
        let mut other_version = bytes.clone();
        other_version[8] = 9;
        assert_eq!(
            decode(&other_version).to_string(),
            "f.bin: test file version 9 is not supported (this build reads version 3)"
        );
        let mut bad_json = bytes;
        bad_json[20] = b'#';
        assert!(matches!(decode(&bad_json), ContainerError::BadHeader { .. }));
    }
}
