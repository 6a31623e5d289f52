//! Mutations of a valid file: the edits a damaged disk, a careless tool or a hostile author
//! makes. Bit flips and byte edits, integers overwritten with boundary values (the length
//! fields), truncation, deleted and repeated ranges, splices of two inputs, and decimal
//! numbers in text (JSON headers, manifests, transcripts) replaced with hostile ones.

use crate::rng::Rng;

/// Integers that sit on the boundaries loaders get wrong.
const INTERESTING: [u64; 12] = [
    0,
    1,
    0x7f,
    0xff,
    0xffff,
    0x7fff_ffff,
    0x8000_0000,
    0xffff_ffff,
    0x1_0000_0000,
    (1 << 36) - 1,
    i64::MAX as u64,
    u64::MAX,
];

/// Decimal replacements for numbers in text.
const HOSTILE_NUMBERS: [&str; 12] = [
    "0",
    "-1",
    "1",
    "65536",
    "4294967295",
    "4294967296",
    "18446744073709551615",
    "99999999999999999999999",
    "1e309",
    "-0",
    "0.5",
    "3",
];

/// One to four stacked mutations of `parent`; `corpus` supplies splice partners.
pub fn mutate(parent: &[u8], corpus: &[Vec<u8>], rng: &mut Rng) -> Vec<u8> {
    let mut data = parent.to_vec();
    for _ in 0..1 + rng.below(4) {
        mutate_once(&mut data, corpus, rng);
    }
    data
}

fn mutate_once(data: &mut Vec<u8>, corpus: &[Vec<u8>], rng: &mut Rng) {
    if data.is_empty() {
        data.push(rng.next_u64() as u8);
        return;
    }
    let at = rng.below(data.len());
    match rng.below(9) {
        0 => data[at] ^= 1 << rng.below(8),
        1 => data[at] = *rng.pick(&[0u8, 0xff, 0x7f, 0x80, b'0', b'9', b'"', b'{', b' ']),
        2 => overwrite_integer(data, at, rng),
        3 => data.truncate(at),
        4 => {
            let end = (at + 1 + rng.below(64)).min(data.len());
            data.drain(at..end);
        }
        5 => {
            let end = (at + 1 + rng.below(256)).min(data.len());
            let copy = data[at..end].to_vec();
            let to = rng.below(data.len() + 1);
            data.splice(to..to, copy);
        }
        6 => {
            let other = rng.pick(corpus);
            let from = rng.below(other.len() + 1);
            data.truncate(at);
            data.extend_from_slice(&other[from..]);
        }
        7 | 8 => replace_number(data, rng),
        _ => unreachable!(),
    }
}

/// Writes a boundary value as a 1-, 2-, 4- or 8-byte integer, either byte order.
fn overwrite_integer(data: &mut [u8], at: usize, rng: &mut Rng) {
    let value = *rng.pick(&INTERESTING);
    let width = *rng.pick(&[1usize, 2, 4, 8]);
    let bytes = if rng.below(2) == 0 {
        value.to_le_bytes()
    } else {
        (value << (8 * (8 - width))).to_be_bytes()
    };
    let end = (at + width).min(data.len());
    data[at..end].copy_from_slice(&bytes[..end - at]);
}

/// Replaces one run of ASCII digits (a count, a length, a width in a JSON header) with a
/// hostile number.
fn replace_number(data: &mut Vec<u8>, rng: &mut Rng) {
    let runs: Vec<(usize, usize)> = digit_runs(data).take(4096).collect();
    if runs.is_empty() {
        return;
    }
    let (start, end) = *rng.pick(&runs);
    let number = rng.pick(&HOSTILE_NUMBERS).as_bytes().to_vec();
    data.splice(start..end, number);
}

fn digit_runs(data: &[u8]) -> impl Iterator<Item = (usize, usize)> + '_ {
    let mut i = 0;
    std::iter::from_fn(move || {
        while i < data.len() && !data[i].is_ascii_digit() {
            i += 1;
        }
        if i == data.len() {
            return None;
        }
        let start = i;
        while i < data.len() && data[i].is_ascii_digit() {
            i += 1;
        }
        Some((start, i))
    })
}

/// The end of the JSON value starting at `start` (one past its closing brace), found by
/// counting braces outside strings; `None` if it does not close.
pub fn json_end(data: &[u8], start: usize) -> Option<usize> {
    let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
    for (i, &b) in data.iter().enumerate().skip(start) {
        if in_string {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'{' | b'[' => depth += 1,
            b'}' | b']' => {
                depth = depth.checked_sub(1)?;
                if depth == 0 {
                    return Some(i + 1);
                }
            }
            _ => {}
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_end_skips_braces_in_strings() {
        let data = br#"xx{"a":"}{","b":[1,{"c":2}]}tail"#;
        assert_eq!(json_end(data, 2), Some(data.len() - 4));
        assert_eq!(json_end(b"{\"open\":", 0), None);
    }

    #[test]
    fn mutations_are_reproducible_from_the_seed() {
        let corpus = vec![b"{\"len\":1234,\"x\":[5,6]}".to_vec()];
        let run = |seed| {
            let mut rng = Rng::new(seed);
            (0..50)
                .map(|_| mutate(&corpus[0], &corpus, &mut rng))
                .collect::<Vec<_>>()
        };
        assert_eq!(run(7), run(7));
        assert_ne!(run(7), run(8));
    }
}
