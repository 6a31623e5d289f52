//! What a FLAC file's first frame says about its samples, read from the bytes: claxon decodes
//! each frame at the width its own header gives and reports only STREAMINFO's width, so a file
//! whose STREAMINFO disagrees with its frames (16-bit frames under a header claiming 32 bits)
//! would decode to samples scaled by the wrong power of two, features shifted by a constant.

/// Bits per sample the first frame's header declares, or `None` when it defers to STREAMINFO
/// (code 0), uses a reserved code, or the bytes do not reach a frame (the decoder reports those
/// files itself).
pub(crate) fn first_frame_bits_per_sample(bytes: &[u8]) -> Option<u32> {
    let mut at = 4; // after "fLaC"
    // Metadata blocks: a 4-byte header (last-block flag and type, 24-bit length) and the body.
    loop {
        let header = bytes.get(at..at + 4)?;
        let length = u32::from_be_bytes([0, header[1], header[2], header[3]]) as usize;
        at = at.checked_add(4 + length)?;
        if header[0] & 0x80 != 0 {
            break;
        }
    }
    let frame = bytes.get(at..at + 4)?;
    // A frame starts with the 14-bit sync code 0b11111111111110.
    if frame[0] != 0xFF || frame[1] & 0xFC != 0xF8 {
        return None;
    }
    match (frame[3] >> 1) & 0b111 {
        0b001 => Some(8),
        0b010 => Some(12),
        0b100 => Some(16),
        0b101 => Some(20),
        0b110 => Some(24),
        0b111 => Some(32),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_first_frames_width_past_the_metadata() {
        let tone = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/data/tone.flac")).unwrap();
        assert_eq!(first_frame_bits_per_sample(&tone), Some(16));
        assert_eq!(
            first_frame_bits_per_sample(&tone[..40]),
            None,
            "cut inside the metadata"
        );
        assert_eq!(first_frame_bits_per_sample(b"fLaC"), None);
    }

    /// STREAMINFO's width (5 bits, less one) sits across bytes 20 and 21 of the file.
    #[test]
    fn a_header_whose_width_disagrees_with_the_frames_is_refused() {
        let tone = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/data/tone.flac")).unwrap();
        for claimed in [8u8, 32] {
            let mut lying = tone.clone();
            let code = claimed - 1;
            lying[20] = (lying[20] & !1) | (code >> 4);
            lying[21] = (lying[21] & 0x0F) | ((code & 0x0F) << 4);
            let err = super::super::decode_audio(&lying, "lying.flac")
                .unwrap_err()
                .to_string();
            assert_eq!(
                err,
                format!(
                    "lying.flac: corrupt FLAC data: its header says {claimed} bits per sample, its frames hold 16; \
                     decoded, every sample would be scaled wrong"
                )
            );
        }
    }
}
