//! The packed corpus: one file holding every split's FLAC audio and transcripts, so the browser
//! fetches a single asset and nobody needs espeak-ng to run the lab.
//!
//! A [`crate::container`] file (magic `PLCORPUS`, version 1) whose JSON header lists the entries
//! and whose body is the concatenated FLAC files.

use serde::{Deserialize, Serialize};

use crate::container::{ContainerError, Format};

const FORMAT: Format = Format {
    magic: b"PLCORPUS",
    version: 1,
    noun: "corpus pack",
};

/// Why a pack could not be read (every error names the file).
pub type PackError = ContainerError;

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

/// A parsed pack borrowing its bytes.
#[derive(Debug)]
pub struct CorpusPack<'a> {
    pub header: PackHeader,
    blob: &'a [u8],
}

impl<'a> CorpusPack<'a> {
    /// Parses and validates a pack; `name` appears in errors.
    pub fn parse(bytes: &'a [u8], name: &str) -> Result<Self, PackError> {
        let (header, blob): (PackHeader, &[u8]) = FORMAT.decode(bytes, name)?;
        for entry in &header.entries {
            if !super::SPLITS.contains(&entry.split.as_str()) {
                return Err(FORMAT.bad_header(
                    name,
                    format!("entry {:?} is in an unknown split {:?}", entry.id, entry.split),
                ));
            }
            // Ids become file names (`corpus fixture`): only LibriSpeech's digits and dashes,
            // never a path.
            if !is_librispeech_id(&entry.id) {
                return Err(FORMAT.bad_header(
                    name,
                    format!(
                        "entry id {:?} is not <speaker>-<chapter>-<utterance> in digits",
                        entry.id
                    ),
                ));
            }
            if entry
                .offset
                .checked_add(entry.len)
                .is_none_or(|end| end > blob.len() as u64)
            {
                return Err(FORMAT.truncated(name, &format!("audio of {} runs past the end", entry.id)));
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

    /// The normalised transcripts of one split, in pack order: what a lexicon and its language
    /// model are built from (the train split's; never dev or test).
    pub fn transcripts(&self, split: &str) -> Vec<String> {
        self.split(split)
            .map(|e| crate::text::normalize_transcript(&e.text))
            .collect()
    }
}

/// `<speaker>-<chapter>-<utterance>`, each a run of 1 to 12 ASCII digits.
pub fn is_librispeech_id(id: &str) -> bool {
    let parts: Vec<&str> = id.split('-').collect();
    parts.len() == 3
        && parts
            .iter()
            .all(|p| (1..=12).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_digit()))
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
    let header = PackHeader {
        description: description.to_string(),
        entries,
    };
    FORMAT.encode(&header, &[&blob])
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

    /// `corpus fixture` makes file names of ids: a pack naming `../x` or `/abs/x` once wrote
    /// outside the fixture's directory.
    #[test]
    fn ids_that_are_paths_and_unknown_splits_are_refused() {
        for (split, id, message) in [
            ("train", "..-..-x", "is not <speaker>-<chapter>-<utterance>"),
            (
                "train",
                "/tmp/victim/precious-1-2",
                "is not <speaker>-<chapter>-<utterance>",
            ),
            ("train", "1-2", "is not <speaker>-<chapter>-<utterance>"),
            ("valid", "1-2-3", "unknown split"),
        ] {
            let bytes = write_pack("hostile", [(split, id, "HELLO", &b"fLaC"[..])]);
            let err = CorpusPack::parse(&bytes, "evil.plc").unwrap_err().to_string();
            assert!(
                err.starts_with("evil.plc: corpus pack header is malformed") && err.contains(message),
                "{err}"
            );
        }
    }
}
