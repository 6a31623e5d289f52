//! The packed corpus: one file holding every split's FLAC audio and transcripts, so the browser
//! fetches a single asset and nobody needs espeak-ng to run the lab.
//!
//! Layout (all integers little-endian):
//! ```text
//! magic  "PLCORPUS"           8 bytes
//! version u32                 currently 1
//! header_len u64              length of the JSON header
//! header  JSON                PackHeader: entries with offsets into the blob
//! blob                        concatenated FLAC files
//! ```

use serde::{Deserialize, Serialize};

const MAGIC: &[u8; 8] = b"PLCORPUS";
const VERSION: u32 = 1;
const PREFIX_LEN: usize = 8 + 4 + 8;

/// One utterance in the pack.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PackEntry {
    /// `train`, `dev` or `test`.
    pub split: String,
    /// LibriSpeech-style id `<speaker>-<chapter>-<utt>`.
    pub id: String,
    pub text: String,
    /// Byte range of the FLAC file within the blob.
    pub offset: u64,
    pub len: u64,
}

/// Everything in the header besides the entries is descriptive (how the corpus was made).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PackHeader {
    pub description: String,
    pub entries: Vec<PackEntry>,
}

/// Why a pack could not be read.
#[derive(Debug, thiserror::Error)]
pub enum PackError {
    #[error("{name}: not a Prunelab corpus pack (bad magic bytes)")]
    BadMagic { name: String },
    #[error("{name}: corpus pack version {found} is not supported (this build reads version {VERSION})")]
    UnsupportedVersion { name: String, found: u32 },
    #[error("{name}: corpus pack is truncated ({detail})")]
    Truncated { name: String, detail: String },
    #[error("{name}: corpus pack header is malformed: {detail}")]
    BadHeader { name: String, detail: String },
}

/// A parsed pack borrowing its bytes.
#[derive(Debug)]
pub struct CorpusPack<'a> {
    pub header: PackHeader,
    blob: &'a [u8],
}

impl<'a> CorpusPack<'a> {
    /// Parses and validates a pack; `name` appears in errors.
    pub fn parse(bytes: &'a [u8], name: &str) -> Result<Self, PackError> {
        let truncated = |detail: &str| PackError::Truncated {
            name: name.to_string(),
            detail: detail.to_string(),
        };
        if bytes.len() < PREFIX_LEN {
            return Err(
                if bytes.starts_with(&MAGIC[..bytes.len().min(8)]) && !bytes.is_empty() {
                    truncated("shorter than its fixed prefix")
                } else {
                    PackError::BadMagic { name: name.to_string() }
                },
            );
        }
        if &bytes[..8] != MAGIC {
            return Err(PackError::BadMagic { name: name.to_string() });
        }
        let version = u32::from_le_bytes(bytes[8..12].try_into().expect("4 bytes"));
        if version != VERSION {
            return Err(PackError::UnsupportedVersion {
                name: name.to_string(),
                found: version,
            });
        }
        let header_len = u64::from_le_bytes(bytes[12..20].try_into().expect("8 bytes"));
        let header_end = usize::try_from(header_len).ok().and_then(|l| PREFIX_LEN.checked_add(l));
        let header_end = header_end
            .filter(|&e| e <= bytes.len())
            .ok_or_else(|| truncated("header runs past the end"))?;
        let header: PackHeader =
            serde_json::from_slice(&bytes[PREFIX_LEN..header_end]).map_err(|e| PackError::BadHeader {
                name: name.to_string(),
                detail: e.to_string(),
            })?;
        let blob = &bytes[header_end..];
        for entry in &header.entries {
            if entry
                .offset
                .checked_add(entry.len)
                .is_none_or(|end| end > blob.len() as u64)
            {
                return Err(truncated(&format!("audio of {} runs past the end", entry.id)));
            }
        }
        Ok(Self { header, blob })
    }

    /// The FLAC bytes of `entry` (bounds were checked in `parse`).
    pub fn audio(&self, entry: &PackEntry) -> &'a [u8] {
        &self.blob[entry.offset as usize..(entry.offset + entry.len) as usize]
    }

    /// Entries of one split, in pack order.
    pub fn split(&self, split: &str) -> impl Iterator<Item = &PackEntry> {
        self.header.entries.iter().filter(move |e| e.split == split)
    }
}

/// Builds a pack from `(split, id, text, flac_bytes)` items.
pub fn write_pack<'b>(
    description: &str,
    items: impl IntoIterator<Item = (&'b str, &'b str, &'b str, &'b [u8])>,
) -> Vec<u8> {
    let mut blob = Vec::new();
    let mut entries = Vec::new();
    for (split, id, text, audio) in items {
        entries.push(PackEntry {
            split: split.to_string(),
            id: id.to_string(),
            text: text.to_string(),
            offset: blob.len() as u64,
            len: audio.len() as u64,
        });
        blob.extend_from_slice(audio);
    }
    let header = serde_json::to_vec(&PackHeader {
        description: description.to_string(),
        entries,
    })
    .expect("header serialises");
    let mut out = Vec::with_capacity(PREFIX_LEN + header.len() + blob.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&VERSION.to_le_bytes());
    out.extend_from_slice(&(header.len() as u64).to_le_bytes());
    out.extend_from_slice(&header);
    out.extend_from_slice(&blob);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<u8> {
        write_pack(
            "test",
            [
                ("train", "1-1-0", "HELLO", &b"fLaCaaa"[..]),
                ("dev", "2-1-0", "WORLD", &b"fLaCbb"[..]),
            ],
        )
    }

    #[test]
    fn round_trips_entries_and_audio() {
        let bytes = sample();
        let pack = CorpusPack::parse(&bytes, "p").unwrap();
        let dev: Vec<_> = pack.split("dev").collect();
        assert_eq!(dev.len(), 1);
        assert_eq!(dev[0].text, "WORLD");
        assert_eq!(pack.audio(dev[0]), b"fLaCbb");
    }

    #[test]
    fn rejects_garbage_truncation_and_other_versions() {
        assert!(matches!(
            CorpusPack::parse(b"not a pack at all, no", "g").unwrap_err(),
            PackError::BadMagic { .. }
        ));
        let bytes = sample();
        let err = CorpusPack::parse(&bytes[..bytes.len() - 2], "cut.bin").unwrap_err();
        assert!(matches!(err, PackError::Truncated { .. }));
        assert!(err.to_string().starts_with("cut.bin:"), "{err}");
        let mut other = bytes.clone();
        other[8] = 9;
        assert!(matches!(
            CorpusPack::parse(&other, "v").unwrap_err(),
            PackError::UnsupportedVersion { found: 9, .. }
        ));
    }
}
