//! NumPy's `.npy` format for 2-D float32 arrays (little-endian, C order): written as version
//! 1.0, read from version 1.0 or 2.0. Reading checks the header against the file's size before
//! anything is allocated.

pub fn encode_f32_2d(values: &[f32], rows: usize, cols: usize) -> Vec<u8> {
    assert_eq!(values.len(), rows * cols, "npy data does not match its shape");
    let mut header = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': ({rows}, {cols}), }}");
    // The magic (6) + version (2) + length (2) + header + newline must be a multiple of 64.
    let unpadded = 10 + header.len() + 1;
    header.push_str(&" ".repeat((64 - unpadded % 64) % 64));
    header.push('\n');
    let mut out = Vec::with_capacity(10 + header.len() + values.len() * 4);
    out.extend_from_slice(b"\x93NUMPY\x01\x00");
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    values.iter().for_each(|v| out.extend_from_slice(&v.to_le_bytes()));
    out
}

/// The values, rows and columns of a 2-D little-endian float32 `.npy` file's `bytes`; `name`
/// names the file in errors.
pub fn decode_f32_2d(bytes: &[u8], name: &str) -> Result<(Vec<f32>, usize, usize), String> {
    let problem = |what: &str| format!("{name}: not a 2-D float32 .npy file: {what}");
    if bytes.len() < 10 || &bytes[..6] != b"\x93NUMPY" {
        return Err(problem("no NumPy magic"));
    }
    let (header_start, header_len): (usize, usize) = match bytes[6] {
        1 => (10, u16::from_le_bytes([bytes[8], bytes[9]]) as usize),
        2 | 3 if bytes.len() >= 12 => (
            12,
            u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize,
        ),
        v => return Err(problem(&format!("format version {v}"))),
    };
    let data_start = header_start
        .checked_add(header_len)
        .filter(|&end| end <= bytes.len())
        .ok_or_else(|| problem("the header runs past the end of the file"))?;
    let header =
        std::str::from_utf8(&bytes[header_start..data_start]).map_err(|_| problem("the header is not text"))?;
    let field = |key: &str| {
        let at = header.find(&format!("'{key}'"))?;
        let rest = header[at + key.len() + 2..]
            .trim_start()
            .strip_prefix(':')?
            .trim_start();
        Some(rest)
    };
    if !field("descr").is_some_and(|v| v.starts_with("'<f4'")) {
        return Err(problem("its dtype is not little-endian float32 ('<f4')"));
    }
    if !field("fortran_order").is_some_and(|v| v.starts_with("False")) {
        return Err(problem("it is not in C order"));
    }
    let shape = field("shape")
        .and_then(|v| v.strip_prefix('('))
        .and_then(|v| v.split(')').next())
        .ok_or_else(|| problem("no shape"))?;
    let dims: Vec<usize> = shape
        .split(',')
        .map(str::trim)
        .filter(|d| !d.is_empty())
        .map(|d| d.parse().map_err(|_| problem(&format!("shape ({shape})"))))
        .collect::<Result<_, _>>()?;
    let [rows, cols] = dims[..] else {
        return Err(problem(&format!("shape ({shape}) is not 2-D")));
    };
    let data = &bytes[data_start..];
    let expected = rows.checked_mul(cols).and_then(|n| n.checked_mul(4));
    if expected != Some(data.len()) {
        return Err(format!(
            "{name}: its shape ({rows}, {cols}) needs {} bytes of data, the file holds {}",
            expected.map_or("more than addressable".to_string(), |n| n.to_string()),
            data.len()
        ));
    }
    let values = data
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    Ok((values, rows, cols))
}

#[cfg(test)]
mod tests {
    #[test]
    fn header_is_aligned_and_data_follows() {
        let bytes = super::encode_f32_2d(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0], 2, 3);
        let header_len = u16::from_le_bytes([bytes[8], bytes[9]]) as usize;
        assert_eq!((10 + header_len) % 64, 0);
        assert_eq!(bytes.len(), 10 + header_len + 24);
        assert_eq!(&bytes[10 + header_len..10 + header_len + 4], &1.0f32.to_le_bytes());
    }

    #[test]
    fn what_is_written_reads_back_and_damage_is_named() {
        let bytes = super::encode_f32_2d(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0], 2, 3);
        assert_eq!(
            super::decode_f32_2d(&bytes, "a.npy").unwrap(),
            (vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0], 2, 3)
        );
        let short = &bytes[..bytes.len() - 1];
        assert!(
            super::decode_f32_2d(short, "a.npy")
                .unwrap_err()
                .contains("needs 24 bytes")
        );
        let mut huge = bytes.clone();
        let text = String::from_utf8_lossy(&huge).replace("(2, 3)", "(9999999999999, 3)");
        huge = text.into_bytes();
        assert!(super::decode_f32_2d(&huge, "a.npy").is_err());
        assert!(
            super::decode_f32_2d(b"\x93NUMPY\x01\x00\xff\xff", "a.npy")
                .unwrap_err()
                .contains("past the end")
        );
    }
}
