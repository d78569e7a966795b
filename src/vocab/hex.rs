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

/// Hex (either case) → bytes; `None` for an odd length or a byte that is not a hex digit. A
/// sign is not one: `from_str_radix`, which this replaced, read `+f` as 15, so one signature
/// could be written several ways and pass where the vendors (which compare the hex they
/// compute) refuse it. By table: every signed request's signature went through
/// `from_str_radix` 32 times. A SHA-256 signature's 32 bytes stay on the stack.
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

/// The byte two hex digits (either case) write, as a `%XX` escape's; `None` unless `digits`
/// is two hex digits. A sign is not one: `u8::from_str_radix`, which the percent-decoders
/// used, reads `+f` as 15, so `%+f` decoded where the clients and backends a gateway stands
/// between keep it as it is or refuse it.
pub fn pair(digits: &[u8]) -> Option<u8> {
    let [high, low] = *digits else {
        return None;
    };
    let (byte, bad) = byte_of(high, low);
    (bad == 0).then_some(byte)
}

/// Each pair of `hex` into a byte of `out`, with no branch; returns [`NOT_HEX`] when any
/// digit was not one, else 0. With the zeroed buffer this took a signature's decoding from
/// 590 instructions to 400.
fn decode_pairs(out: &mut [u8], hex: &[u8]) -> u8 {
    let mut bad = 0;
    for (byte, pair) in out.iter_mut().zip(hex.chunks_exact(2)) {
        let (value, not_hex) = byte_of(pair[0], pair[1]);
        bad |= not_hex;
        *byte = value;
    }
    bad
}

/// The byte two digits write, by two loads, and [`NOT_HEX`] when either is not a hex digit
/// (else 0).
#[inline]
fn byte_of(high: u8, low: u8) -> (u8, u8) {
    let (high, low) = (HEX_DIGIT[usize::from(high)], HEX_DIGIT[usize::from(low)]);
    (high << 4 | low, (high | low) & NOT_HEX)
}

/// What a byte is worth as a hex digit (either case); [`NOT_HEX`] for any other byte.
static HEX_DIGIT: [u8; 256] = {
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

    /// Decoding by `from_str_radix` with its sign refused: the oracle.
    fn old(s: &str) -> Option<Vec<u8>> {
        if s.len() % 2 != 0 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).ok())
            .collect()
    }

    proptest::proptest! {
        /// Any string of digits, signs, other ASCII and non-ASCII, of any length (a
        /// signature's 64 digits and more), decodes as `from_str_radix` reads hex digits.
        #[test]
        fn any_string_decodes_as_from_str_radix_reads_hex_digits(
            s in "([0-9a-fA-F]{2}){0,34}[0-9a-fA-F+ gG\\-é]{0,3}([0-9a-fA-F]{2}){0,2}",
        ) {
            proptest::prop_assert_eq!(decode_hex(&s).map(|v| v.to_vec()), old(&s));
        }
    }

    #[test]
    fn a_pair_is_two_hex_digits_as_from_str_radix_reads_them() {
        for a in 0..=255u8 {
            for b in 0..=255u8 {
                let digits = [a, b];
                let want = (a.is_ascii_hexdigit() && b.is_ascii_hexdigit()).then(|| {
                    u8::from_str_radix(std::str::from_utf8(&digits).unwrap(), 16).unwrap()
                });
                assert_eq!(pair(&digits), want, "{digits:?}");
            }
        }
        assert_eq!(pair(b"a"), None);
        assert_eq!(pair(b"abc"), None);
    }

    #[test]
    fn a_sign_is_not_a_hex_digit() {
        for s in ["+f", "+0", "0a+f", "+fff", "-f"] {
            assert_eq!(decode_hex(s), None, "{s:?}");
        }
        assert_eq!(decode_hex("0fFF").map(|v| v.to_vec()), Some(vec![15, 255]));
    }

    #[test]
    fn hex_decodes_as_from_str_radix_reads_each_pair_of_digits() {
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
