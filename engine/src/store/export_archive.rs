//! An export in one file, for the browser: the folder `prunelab prune` writes (`manifest.json`
//! and `model.safetensors`) as an uncompressed tar archive, so one download carries both and
//! `tar xf` gives back the folder that `prunelab eval` and `python/prunelab_torch` read; the lab
//! and `prunelab eval` also read the archive as it is.
//!
//! Only what that needs is written: regular files in one folder, POSIX ustar headers. The
//! reader takes any tar holding one `manifest.json` and one `model.safetensors` (other entries
//! are passed over), and refuses anything else by name, never reading past the end.

use super::StoreError;
use super::export::{ExportManifest, encode_weights};
use crate::bounded_read::limits;
use crate::model::Conformer;

/// Tar's unit: every header is one block, and every file's data is padded to whole blocks.
const BLOCK: usize = 512;
/// A ustar header's name field holds at most this many bytes (the last stays NUL).
const NAME_LIMIT: usize = 99;
/// The size field's 11 octal digits hold at most 8 GiB − 1.
const SIZE_LIMIT: u64 = (1 << 33) - 1;

/// The export of `model` described by `manifest`, as a tar archive whose files lie in
/// `folder`; `modified` (seconds since 1970) is every file's time, so the same model, manifest
/// and time give the same bytes.
pub fn export_archive(
    folder: &str,
    manifest: &ExportManifest,
    model: &Conformer,
    modified: u64,
) -> Result<Vec<u8>, StoreError> {
    archive_export_files(folder, &manifest.to_json()?, &encode_weights(model)?, modified)
}

/// An export's two files (`manifest`, `weights`) in `folder` as a tar archive (see
/// [`export_archive`]).
pub fn archive_export_files(
    folder: &str,
    manifest: &str,
    weights: &[u8],
    modified: u64,
) -> Result<Vec<u8>, StoreError> {
    tar_archive(
        &[
            (format!("{folder}/{MANIFEST}"), manifest.as_bytes()),
            (format!("{folder}/{WEIGHTS}"), weights),
        ],
        modified,
    )
    .map_err(|e| StoreError::Unserialisable(format!("cannot write the export archive: {e}")))
}

/// The export's file names, inside the archive's folder.
const MANIFEST: &str = "manifest.json";
const WEIGHTS: &str = "model.safetensors";

/// The manifest (text) and weights an export archive holds; `name` (the archive's) appears in
/// every error. Load them with [`super::load_export`].
pub fn read_export_archive(archive: &[u8], name: &str) -> Result<(String, Vec<u8>), StoreError> {
    let bad = |detail: String| StoreError::BadWeights {
        name: name.to_string(),
        detail,
    };
    let mut manifest = None;
    let mut weights = None;
    for entry in tar_entries(archive) {
        let (path, data) = entry.map_err(|e| bad(format!("not a readable tar archive: {e}")))?;
        let (wanted, slot, limit) = match path.rsplit('/').next() {
            Some(MANIFEST) => (MANIFEST, &mut manifest, limits::JSON),
            Some(WEIGHTS) => (WEIGHTS, &mut weights, limits::EXPORT_WEIGHTS),
            _ => continue,
        };
        if slot.is_some() {
            return Err(bad(format!("holds more than one {wanted}")));
        }
        if data.len() as u64 > limit {
            return Err(bad(format!(
                "its {wanted} is {} bytes, more than an export's can be",
                data.len()
            )));
        }
        *slot = Some(data);
    }
    let missing = |what: &str| {
        bad(format!(
            "holds no {what}: not an export of the lab or of prunelab prune"
        ))
    };
    let manifest = manifest.ok_or_else(|| missing(MANIFEST))?;
    let weights = weights.ok_or_else(|| missing(WEIGHTS))?;
    let manifest =
        String::from_utf8(manifest.to_vec()).map_err(|_| bad(format!("its {MANIFEST} is not UTF-8 text")))?;
    Ok((manifest, weights.to_vec()))
}

/// The regular files of a tar archive as (path, data), in order, until its end (two zero
/// blocks, or the end of the bytes at a block boundary); an error where a header is damaged
/// or a file runs past the end.
fn tar_entries(archive: &[u8]) -> impl Iterator<Item = Result<(String, &[u8]), String>> {
    let mut offset = 0;
    let mut failed = false;
    std::iter::from_fn(move || {
        loop {
            if failed {
                return None;
            }
            let header = archive.get(offset..offset + BLOCK)?;
            if header.iter().all(|&b| b == 0) {
                return None;
            }
            let entry = read_header(header).and_then(|(path, size, regular)| {
                let start = offset + BLOCK;
                let data = start
                    .checked_add(size)
                    .and_then(|end| archive.get(start..end))
                    .ok_or_else(|| format!("{path:?} says {size} bytes, past the end of the archive"))?;
                offset = start + size.next_multiple_of(BLOCK);
                Ok(regular.then_some((path, data)))
            });
            match entry {
                Ok(Some(file)) => return Some(Ok(file)),
                Ok(None) => continue,
                Err(e) => {
                    failed = true;
                    return Some(Err(e));
                }
            }
        }
    })
}

/// A header's path, data size and whether it is a regular file; an error where its checksum
/// or a number does not read.
fn read_header(header: &[u8]) -> Result<(String, usize, bool), String> {
    let stored = octal_field(&header[148..156]).ok_or("a header's checksum is not a number")?;
    let sum = checksum(header);
    if stored != sum {
        return Err(format!("a header's checksum is {stored}, its bytes sum to {sum}"));
    }
    let text = |field: &[u8]| -> String {
        let end = field.iter().position(|&b| b == 0).unwrap_or(field.len());
        String::from_utf8_lossy(&field[..end]).into_owned()
    };
    let mut path = text(&header[0..100]);
    if &header[257..262] == b"ustar" {
        let prefix = text(&header[345..500]);
        if !prefix.is_empty() {
            path = format!("{prefix}/{path}");
        }
    }
    let size = octal_field(&header[124..136])
        .and_then(|n| usize::try_from(n).ok())
        .ok_or_else(|| format!("{path:?}: its size is not an octal number"))?;
    // '0' (or NUL, from old tars) is a regular file; directories, links and extended headers
    // are passed over.
    Ok((path, size, matches!(header[156], b'0' | 0)))
}

/// A header's checksum: the sum of its bytes with its own field (bytes 148 to 155) read as
/// eight spaces, whatever the field holds.
fn checksum(header: &[u8]) -> u64 {
    let field: u64 = header[148..156].iter().map(|&b| u64::from(b)).sum();
    let all: u64 = header.iter().map(|&b| u64::from(b)).sum();
    all - field + 8 * u64::from(b' ')
}

/// An octal number field: digits, leading spaces allowed, ended by NUL, space or the field's end.
fn octal_field(field: &[u8]) -> Option<u64> {
    let digits: Vec<u8> = field
        .iter()
        .copied()
        .skip_while(|&b| b == b' ')
        .take_while(|&b| b != 0 && b != b' ')
        .collect();
    if digits.is_empty() || digits.len() > 21 || !digits.iter().all(|b| (b'0'..=b'7').contains(b)) {
        return None;
    }
    u64::from_str_radix(std::str::from_utf8(&digits).ok()?, 8).ok()
}

/// `files` (path, contents) as a tar archive, each file readable by all and writable by its
/// owner, modified at `modified`.
fn tar_archive(files: &[(String, &[u8])], modified: u64) -> Result<Vec<u8>, String> {
    let total: usize = files
        .iter()
        .map(|(_, data)| BLOCK + data.len().next_multiple_of(BLOCK))
        .sum();
    // Two zero blocks close the archive.
    let mut out = Vec::with_capacity(total + 2 * BLOCK);
    for (path, data) in files {
        out.extend_from_slice(&file_header(path, data.len() as u64, modified)?);
        out.extend_from_slice(data);
        out.resize(out.len().next_multiple_of(BLOCK), 0);
    }
    out.resize(out.len() + 2 * BLOCK, 0);
    Ok(out)
}

/// The ustar header of a regular file.
fn file_header(path: &str, size: u64, modified: u64) -> Result<[u8; BLOCK], String> {
    if path.is_empty() || path.len() > NAME_LIMIT || !path.is_ascii() {
        return Err(format!("{path:?}: a name must be 1 to {NAME_LIMIT} ASCII bytes"));
    }
    if size > SIZE_LIMIT {
        return Err(format!("{path}: {size} bytes is more than a tar header can say"));
    }
    let mut header = [0u8; BLOCK];
    let mut put = |offset: usize, bytes: &[u8]| header[offset..offset + bytes.len()].copy_from_slice(bytes);
    put(0, path.as_bytes());
    put(100, b"0000644\0"); // mode: rw-r--r--
    put(108, b"0000000\0"); // owner's user id
    put(116, b"0000000\0"); // owner's group id
    put(124, format!("{size:011o}\0").as_bytes());
    put(136, format!("{:011o}\0", modified.min(SIZE_LIMIT)).as_bytes());
    put(156, b"0"); // a regular file
    put(257, b"ustar\0");
    put(263, b"00");
    let sum = checksum(&header);
    header[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
    Ok(header)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_file_is_a_header_then_its_data_padded_to_blocks_and_two_zero_blocks_close_it() {
        let first = vec![7u8; 700];
        let archive = tar_archive(
            &[("cut/a.json".into(), b"{}"), ("cut/b.bin".into(), &first)],
            1_700_000_000,
        )
        .unwrap();
        // a: header + 1 block; b: header + 2 blocks; then 2 zero blocks.
        assert_eq!(archive.len(), BLOCK * (2 + 3 + 2));
        let a = &archive[..BLOCK];
        assert_eq!(&a[..10], b"cut/a.json");
        assert_eq!(octal_field(&a[124..136]), Some(2));
        assert_eq!(octal_field(&a[136..148]), Some(1_700_000_000));
        assert_eq!(&archive[BLOCK..BLOCK + 2], b"{}");
        assert!(archive[BLOCK + 2..2 * BLOCK].iter().all(|&b| b == 0));
        let b = &archive[2 * BLOCK..3 * BLOCK];
        assert_eq!(octal_field(&b[124..136]), Some(700));
        assert_eq!(&archive[3 * BLOCK..3 * BLOCK + 700], &first[..]);
        assert!(archive[5 * BLOCK..].iter().all(|&b| b == 0));
        // The checksum: the header's bytes summed with the field as spaces.
        for header in [a, b] {
            let mut blanked = header.to_vec();
            blanked[148..156].fill(b' ');
            let sum: u64 = blanked.iter().map(|&b| u64::from(b)).sum();
            assert_eq!(octal_field(&header[148..156]), Some(sum));
        }
    }

    #[test]
    fn the_reader_gives_back_the_two_files_and_refuses_damage_by_name() {
        let weights: Vec<u8> = (0..1500u32).map(|i| (i % 253) as u8).collect();
        let archive = archive_export_files("cut", "{\"a\": 1}", &weights, 7).unwrap();
        let (manifest, read) = read_export_archive(&archive, "cut.tar").unwrap();
        assert_eq!((manifest.as_str(), read), ("{\"a\": 1}", weights.clone()));

        let refused = |bytes: &[u8]| read_export_archive(bytes, "cut.tar").unwrap_err().to_string();
        let mut flipped = archive.clone();
        flipped[3] ^= 1; // a name byte: the header's checksum no longer adds up
        assert!(refused(&flipped).starts_with("cut.tar: not a readable tar archive: a header's checksum"));
        assert!(refused(&archive[..archive.len() - 2048]).contains("past the end of the archive"));
        assert!(refused(b"not a tar at all").contains("holds no manifest.json"));
        let only_weights = tar_archive(&[("cut/model.safetensors".into(), &weights)], 0).unwrap();
        assert!(refused(&only_weights).contains("holds no manifest.json"));
        let twice = tar_archive(
            &[
                ("a/manifest.json".into(), b"{}"),
                ("b/manifest.json".into(), b"{}"),
                ("a/model.safetensors".into(), &weights),
            ],
            0,
        )
        .unwrap();
        assert!(refused(&twice).contains("more than one manifest.json"));
    }

    /// An archive GNU tar writes (a directory entry first, then the files) reads as well.
    #[test]
    fn an_archive_gnu_tar_made_is_read() {
        let dir = std::env::temp_dir().join(format!("prunelab-tar-read-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("cut")).unwrap();
        std::fs::write(dir.join("cut/manifest.json"), b"{}").unwrap();
        std::fs::write(dir.join("cut/model.safetensors"), vec![9u8; 3000]).unwrap();
        let status = std::process::Command::new("tar")
            .args(["-cf", "cut.tar", "cut"])
            .current_dir(&dir)
            .status()
            .expect("GNU tar runs");
        assert!(status.success());
        let archive = std::fs::read(dir.join("cut.tar")).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        let (manifest, weights) = read_export_archive(&archive, "cut.tar").unwrap();
        assert_eq!((manifest.as_str(), weights), ("{}", vec![9u8; 3000]));
    }

    #[test]
    fn names_a_header_cannot_hold_are_refused() {
        let long = format!("{}/manifest.json", "x".repeat(90));
        assert!(
            tar_archive(&[(long, b"")], 0)
                .unwrap_err()
                .contains("1 to 99 ASCII bytes")
        );
        assert!(tar_archive(&[("é/a".into(), b"")], 0).is_err());
    }

    /// GNU tar, an independent reader, extracts the archive: the same bytes come out.
    #[test]
    fn gnu_tar_reads_it_back() {
        let dir = std::env::temp_dir().join(format!("prunelab-tar-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let weights: Vec<u8> = (0..1000u32).map(|i| (i * 7 % 251) as u8).collect();
        let archive = tar_archive(
            &[
                ("cut/manifest.json".into(), b"{\"a\": 1}"),
                ("cut/model.safetensors".into(), &weights),
            ],
            1_700_000_000,
        )
        .unwrap();
        let path = dir.join("cut.tar");
        std::fs::write(&path, &archive).unwrap();
        let status = std::process::Command::new("tar")
            .arg("-xf")
            .arg(&path)
            .arg("-C")
            .arg(&dir)
            .status()
            .expect("GNU tar runs");
        assert!(status.success());
        let manifest = std::fs::read(dir.join("cut/manifest.json")).unwrap();
        let read_weights = std::fs::read(dir.join("cut/model.safetensors")).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(manifest, b"{\"a\": 1}");
        assert_eq!(read_weights, weights);
    }
}
