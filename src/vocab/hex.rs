//! Hex, both ways, by table: request ids, traces, signatures and content hashes are written
//! and read this way on every request, so one home holds both tables.

/// `bytes` as lower-case hex digits, two a byte, into `out` (twice as long): each byte's pair
/// read from a table, one load and one store a byte (ids and traces are written this way on
/// every request).
pub fn hex_into(out: &mut [u8], bytes: &[u8]) {
    for (pair, &b) in out.chunks_exact_mut(2).zip(bytes) {
        pair.copy_from_slice(&HEX_PAIRS[usize::from(b)]);
    }
}

/// Every byte's two lower-case hex digits.
static HEX_PAIRS: [[u8; 2]; 256] = {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut pairs = [[0u8; 2]; 256];
    let mut b = 0;
    while b < 256 {
        pairs[b] = [HEX[b >> 4], HEX[b & 0xf]];
        b += 1;
    }
    pairs
};

/// Lower-case hex, by table ([`hex_into`]).
pub fn hex(bytes: &[u8]) -> String {
    let mut out = vec![0; bytes.len() * 2];
    hex_into(&mut out, bytes);
    String::from_utf8(out).unwrap_or_default()
}

/// A SHA-256 in lower-case hex, on the stack.
pub fn hex32(bytes: &[u8; 32]) -> [u8; 64] {
    let mut out = [0u8; 64];
    hex_into(&mut out, bytes);
    out
}

/// Hex (either case) → bytes; `None` for an odd length or a pair that is not hex. A pair is
/// read as `u8::from_str_radix(pair, 16)` reads it, so `+f` is 15, as it always was; by table
/// rather than through `from_str_radix`, which every signed request's signature went through
/// 32 times. A SHA-256 signature's 32 bytes stay on the stack.
pub fn decode_hex(s: &str) -> Option<smallvec::SmallVec<[u8; 32]>> {
    let hex = s.as_bytes();
    if hex.len() % 2 != 0 {
        return None;
    }
    let mut out = match hex.len() / 2 {
        // a zeroed buffer as it stands, not filled byte by byte as `from_elem` fills it
        n @ 0..=32 => {
            let mut out = smallvec::SmallVec::from_buf([0; 32]);
            out.truncate(n);
            out
        }
        n => smallvec::SmallVec::from_elem(0, n),
    };
    (decode_pairs(&mut out, hex) == 0).then_some(out)
}

/// Each pair of `hex` into a byte of `out`, by two loads and no branch (the first digit's
/// table reads `+` as 0); returns [`NOT_HEX`] when any digit was not one, else 0. With the
/// zeroed buffer this took a signature's decoding from 590 instructions to 400.
fn decode_pairs(out: &mut [u8], hex: &[u8]) -> u8 {
    let mut bad = 0;
    for (byte, pair) in out.iter_mut().zip(hex.chunks_exact(2)) {
        let high = FIRST_DIGIT[usize::from(pair[0])];
        let low = HEX_DIGIT[usize::from(pair[1])];
        bad |= high | low;
        *byte = high << 4 | low;
    }
    bad & NOT_HEX
}

/// What a byte is worth as a hex digit (either case); [`NOT_HEX`] for any other byte.
static HEX_DIGIT: [u8; 256] = DIGITS;

/// [`HEX_DIGIT`] for a pair's first byte: `from_str_radix` takes a leading `+` as a sign, so
/// `+f` is 15 (`++`, and `+` before a non-digit, are refused by the second byte's table).
static FIRST_DIGIT: [u8; 256] = {
    let mut digits = DIGITS;
    digits[b'+' as usize] = 0;
    digits
};

/// Every byte's worth as a hex digit: the two tables' source.
const DIGITS: [u8; 256] = {
    let mut digits = [NOT_HEX; 256];
    let mut i = 0;
    while i < 10 {
        digits[b'0' as usize + i] = i as u8;
        i += 1;
    }
    let mut i = 0;
    while i < 6 {
        digits[b'a' as usize + i] = 10 + i as u8;
        digits[b'A' as usize + i] = 10 + i as u8;
        i += 1;
    }
    digits
};

/// A bit no hex digit's value has.
const NOT_HEX: u8 = 0x10;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoding_writes_what_format_writes() {
        let all: Vec<u8> = (0..=255).collect();
        let want: String = all.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(hex(&all), want);
        assert_eq!(hex32(&[0xab; 32]), *b"ab".repeat(32).as_slice());
    }

    /// Decoding as it was first written, each pair through `from_str_radix`: the oracle.
    fn old(s: &str) -> Option<Vec<u8>> {
        if s.len() % 2 != 0 {
            return None;
        }
        (0..s.len())
            .step_by(2)
            .map(|i| s.get(i..i + 2).and_then(|h| u8::from_str_radix(h, 16).ok()))
            .collect()
    }

    proptest::proptest! {
        /// Any string of digits, signs, other ASCII and non-ASCII, of any length (a
        /// signature's 64 digits and more), decodes as `from_str_radix` read it.
        #[test]
        fn any_string_decodes_as_from_str_radix_reads_it(
            s in "([0-9a-fA-F]{2}){0,34}[0-9a-fA-F+ gG\\-é]{0,3}([0-9a-fA-F]{2}){0,2}",
        ) {
            proptest::prop_assert_eq!(decode_hex(&s).map(|v| v.to_vec()), old(&s));
        }
    }

    #[test]
    fn hex_decodes_as_from_str_radix_reads_each_pair() {
        let chars = b"09afAFgG+- \xc3";
        for &a in chars {
            for &b in chars {
                let pair = String::from_utf8_lossy(&[a, b]).into_owned();
                for s in [pair.clone(), format!("0a{pair}"), format!("{pair}ff")] {
                    assert_eq!(decode_hex(&s).map(|v| v.to_vec()), old(&s), "{s:?}");
                }
            }
        }
        for s in ["", "0", "abc", "é", "éé", "++", "+", "00ff"] {
            assert_eq!(decode_hex(s).map(|v| v.to_vec()), old(s), "{s:?}");
        }
    }
}
