//! Request ids: 32 lower-case hex digits made by the gateway, or the value of a trusted
//! request header.
//!
//! Every request carries one to its answer, its error body, its backend and its access line,
//! so it is copied and read a few times per request. A made id lives inline (no allocation,
//! no UTF-8 check when read); a trusted header's value, up to 128 characters, is shared.

use arrayvec::ArrayString;
use std::fmt;
use std::sync::Arc;

#[derive(Clone, PartialEq, Eq)]
pub struct RequestId(Repr);

#[derive(Clone, PartialEq, Eq)]
enum Repr {
    /// The digits, and the number they spell (high and low halves), so that a trace made
    /// from the id's bits does not parse them back.
    Hex(ArrayString<32>, [u64; 2]),
    Given(Arc<str>),
}

impl RequestId {
    /// `n` as 32 lower-case hex digits: what `format!("{n:032x}")` writes, without the
    /// formatting machinery, which costs more than the random number.
    pub fn from_u128(n: u128) -> RequestId {
        let mut digits = [0u8; 32];
        crate::vocab::hex::hex_into(&mut digits, &n.to_be_bytes());
        let out = ArrayString::from_byte_string(&digits).unwrap_or_default();
        RequestId(Repr::Hex(out, [(n >> 64) as u64, n as u64]))
    }

    /// A fresh random id.
    pub fn random() -> RequestId {
        RequestId::from_u128(fastrand::u128(..))
    }

    /// An id taken as given (from a trusted header).
    pub fn given(id: &str) -> RequestId {
        RequestId(Repr::Given(id.into()))
    }

    /// The 128 bits of an id the gateway made; `None` for one taken from a header (a new
    /// trace's id and the gateway's span id are made from these: see [`crate::request::trace`]).
    pub fn made_bits(&self) -> Option<u128> {
        match &self.0 {
            Repr::Hex(_, [high, low]) => Some(u128::from(*high) << 64 | u128::from(*low)),
            Repr::Given(_) => None,
        }
    }

    /// The id as a header value (`None` for a given id that is not one: never, as `decide`
    /// takes only letters, digits and `-` from a header, but `given` does not check).
    pub fn header_value(&self) -> Option<http::HeaderValue> {
        match &self.0 {
            // SAFETY: `from_u128` writes only the digits `0-9a-f` (`hex_into`'s table), all
            // visible ASCII, which is what a header value may hold; the check that
            // `HeaderValue::from_bytes` would make could not fail. (Debug builds check anyway.)
            Repr::Hex(digits, _) => Some(unsafe {
                http::HeaderValue::from_maybe_shared_unchecked(bytes::Bytes::copy_from_slice(
                    digits.as_bytes(),
                ))
            }),
            Repr::Given(id) => http::HeaderValue::from_str(id).ok(),
        }
    }

    pub fn as_str(&self) -> &str {
        match &self.0 {
            Repr::Hex(digits, _) => digits,
            Repr::Given(id) => id,
        }
    }
}

impl Default for RequestId {
    fn default() -> RequestId {
        RequestId::from_u128(0)
    }
}

impl std::ops::Deref for RequestId {
    type Target = str;
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl PartialEq<&str> for RequestId {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl PartialEq<RequestId> for String {
    fn eq(&self, other: &RequestId) -> bool {
        self == other.as_str()
    }
}

impl serde::Serialize for RequestId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::RequestId;

    #[test]
    fn made_ids_are_what_format_writes() {
        for n in [
            0,
            1,
            0xabc,
            u128::MAX,
            0x0123_4567_89ab_cdef_0011_2233_4455_6677,
        ] {
            assert_eq!(RequestId::from_u128(n).as_str(), format!("{n:032x}"));
            assert_eq!(RequestId::from_u128(n).made_bits(), Some(n));
        }
    }

    #[test]
    fn an_id_s_header_value_is_its_text() {
        for id in [
            RequestId::random(),
            RequestId::from_u128(u128::MAX),
            RequestId::given("a-1"),
        ] {
            let checked = http::HeaderValue::from_str(id.as_str()).unwrap();
            assert_eq!(id.header_value(), Some(checked));
        }
        assert_eq!(RequestId::given("a\nb").header_value(), None);
    }

    #[test]
    fn given_ids_are_kept_as_given() {
        let id = RequestId::given("trace-42");
        assert_eq!(id, "trace-42");
        assert_eq!(format!("{id} {id:?}"), "trace-42 \"trace-42\"");
        assert_ne!(RequestId::random(), RequestId::random());
        assert_eq!(RequestId::given("abcdef").made_bits(), None);
    }
}
