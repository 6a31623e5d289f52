//! An export in one file, for the browser: the folder `prunelab prune` writes (`manifest.json`
//! and `model.safetensors`) as an uncompressed tar archive, so one download carries both and
//! `tar xf` gives back the folder that `prunelab eval` and `python/prunelab_torch` read.
//!
//! Only what that needs is written: regular files in one folder, POSIX ustar headers.

use super::StoreError;
use super::export::{ExportManifest, encode_weights};
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
    let manifest = manifest.to_json()?;
    let weights = encode_weights(model)?;
    tar_archive(
        &[
            (format!("{folder}/manifest.json"), manifest.as_bytes()),
            (format!("{folder}/model.safetensors"), &weights),
        ],
        modified,
    )
    .map_err(|e| StoreError::Unserialisable(format!("cannot write the export archive: {e}")))
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
    // The checksum is the sum of the header's bytes with its own field read as eight spaces.
    put(148, b"        ");
    let sum: u32 = header.iter().map(|&b| u32::from(b)).sum();
    header[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
    Ok(header)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The octal number in a header field (digits up to the first NUL or space).
    fn octal(field: &[u8]) -> u64 {
        let digits: String = field
            .iter()
            .take_while(|&&b| b != 0 && b != b' ')
            .map(|&b| b as char)
            .collect();
        u64::from_str_radix(&digits, 8).unwrap()
    }

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
        assert_eq!(octal(&a[124..136]), 2);
        assert_eq!(octal(&a[136..148]), 1_700_000_000);
        assert_eq!(&archive[BLOCK..BLOCK + 2], b"{}");
        assert!(archive[BLOCK + 2..2 * BLOCK].iter().all(|&b| b == 0));
        let b = &archive[2 * BLOCK..3 * BLOCK];
        assert_eq!(octal(&b[124..136]), 700);
        assert_eq!(&archive[3 * BLOCK..3 * BLOCK + 700], &first[..]);
        assert!(archive[5 * BLOCK..].iter().all(|&b| b == 0));
        // The checksum: the header's bytes summed with the field as spaces.
        for header in [a, b] {
            let mut blanked = header.to_vec();
            blanked[148..156].fill(b' ');
            let sum: u64 = blanked.iter().map(|&b| u64::from(b)).sum();
            assert_eq!(octal(&header[148..156]), sum);
        }
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
