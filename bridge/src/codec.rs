//! The canonical encoding: every value has exactly one byte form, so hashing
//! the encoding is a commitment to the value.
//!
//! Integers are fixed-width big-endian; byte strings and lists carry a `u32`
//! length prefix; `Option` is a `0`/`1` tag; structs are their fields in order.

use crate::DecodeError;

/// Largest length prefix any decoder accepts (bytes or list elements), so a
/// hostile length cannot make a decoder allocate without bound.
pub const MAX_LEN: usize = 64 << 20;

/// Most memory a list decoder reserves before its elements have decoded.
const MAX_RESERVE_BYTES: usize = 64 << 10;

/// Writes the canonical encoding of a value.
pub trait Encode {
    /// Appends the encoding to `out`.
    fn encode_to(&self, out: &mut Vec<u8>);

    /// The encoding as a new vector.
    fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode_to(&mut out);
        out
    }
}

/// Reads a value back from its canonical encoding.
pub trait Decode: Sized {
    /// Decodes from the front of `input`, advancing it past the value.
    fn decode(input: &mut &[u8]) -> Result<Self, DecodeError>;
}

/// Decodes a value that must use all of `bytes`.
pub fn decode_exact<T: Decode>(mut bytes: &[u8]) -> Result<T, DecodeError> {
    let v = T::decode(&mut bytes)?;
    if !bytes.is_empty() {
        return Err(DecodeError::TrailingBytes(bytes.len()));
    }
    Ok(v)
}

fn take<'a>(input: &mut &'a [u8], n: usize, what: &'static str) -> Result<&'a [u8], DecodeError> {
    if input.len() < n {
        return Err(DecodeError::UnexpectedEnd { what, needed: n - input.len() });
    }
    let (head, tail) = input.split_at(n);
    *input = tail;
    Ok(head)
}

macro_rules! int_codec {
    ($($t:ty),*) => {$(
        impl Encode for $t {
            fn encode_to(&self, out: &mut Vec<u8>) {
                out.extend_from_slice(&self.to_be_bytes());
            }
        }
        impl Decode for $t {
            fn decode(input: &mut &[u8]) -> Result<Self, DecodeError> {
                let b = take(input, size_of::<$t>(), stringify!($t))?;
                Ok(<$t>::from_be_bytes(b.try_into().expect("length checked")))
            }
        }
    )*};
}
int_codec!(u8, u16, u32, u64, u128);

impl Encode for bool {
    fn encode_to(&self, out: &mut Vec<u8>) {
        out.push(*self as u8);
    }
}

impl Decode for bool {
    fn decode(input: &mut &[u8]) -> Result<Self, DecodeError> {
        match u8::decode(input)? {
            0 => Ok(false),
            1 => Ok(true),
            tag => Err(DecodeError::InvalidTag { what: "bool", tag }),
        }
    }
}

impl<const N: usize> Encode for [u8; N] {
    fn encode_to(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self);
    }
}

impl<const N: usize> Decode for [u8; N] {
    fn decode(input: &mut &[u8]) -> Result<Self, DecodeError> {
        Ok(take(input, N, "fixed bytes")?.try_into().expect("length checked"))
    }
}

fn decode_len(input: &mut &[u8], what: &'static str) -> Result<usize, DecodeError> {
    let len = u32::decode(input)? as usize;
    if len > MAX_LEN {
        return Err(DecodeError::TooLong { what, len, limit: MAX_LEN });
    }
    Ok(len)
}

/// A length-prefixed byte string (distinct from `Vec<T>` so bytes encode compactly).
impl Encode for [u8] {
    fn encode_to(&self, out: &mut Vec<u8>) {
        (self.len() as u32).encode_to(out);
        out.extend_from_slice(self);
    }
}

impl Encode for Vec<u8> {
    fn encode_to(&self, out: &mut Vec<u8>) {
        self.as_slice().encode_to(out)
    }
}

impl Decode for Vec<u8> {
    fn decode(input: &mut &[u8]) -> Result<Self, DecodeError> {
        let len = decode_len(input, "bytes")?;
        Ok(take(input, len, "bytes")?.to_vec())
    }
}

impl<T: Encode> Encode for Option<T> {
    fn encode_to(&self, out: &mut Vec<u8>) {
        match self {
            None => out.push(0),
            Some(v) => {
                out.push(1);
                v.encode_to(out);
            }
        }
    }
}

impl<T: Decode> Decode for Option<T> {
    fn decode(input: &mut &[u8]) -> Result<Self, DecodeError> {
        match u8::decode(input)? {
            0 => Ok(None),
            1 => Ok(Some(T::decode(input)?)),
            tag => Err(DecodeError::InvalidTag { what: "option", tag }),
        }
    }
}

/// Encodes a list: `u32` count then each element.
pub fn encode_list<T: Encode>(items: &[T], out: &mut Vec<u8>) {
    (items.len() as u32).encode_to(out);
    for i in items {
        i.encode_to(out);
    }
}

/// Decodes a list written by [`encode_list`].
pub fn decode_list<T: Decode>(input: &mut &[u8]) -> Result<Vec<T>, DecodeError> {
    let len = decode_len(input, "list")?;
    // Never trust the prefix for the allocation: every element takes at
    // least one encoded byte, so no more than `input.len()` can follow, and
    // the up-front reservation is capped in bytes of memory (not elements),
    // so a short input claiming millions of large elements reserves little;
    // a real long list grows the vector as its elements decode.
    if len > input.len() {
        return Err(DecodeError::UnexpectedEnd { what: "list", needed: len - input.len() });
    }
    let mut v = Vec::with_capacity(len.min(MAX_RESERVE_BYTES / size_of::<T>().max(1)));
    for _ in 0..len {
        v.push(T::decode(input)?);
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn ints_and_bytes_round_trip(a: u64, b: u32, c: Option<u128>, d: Vec<u8>, flag: bool) {
            let mut out = Vec::new();
            a.encode_to(&mut out);
            b.encode_to(&mut out);
            c.encode_to(&mut out);
            d.encode_to(&mut out);
            flag.encode_to(&mut out);
            let mut input = out.as_slice();
            prop_assert_eq!(u64::decode(&mut input).unwrap(), a);
            prop_assert_eq!(u32::decode(&mut input).unwrap(), b);
            prop_assert_eq!(Option::<u128>::decode(&mut input).unwrap(), c);
            prop_assert_eq!(Vec::<u8>::decode(&mut input).unwrap(), d);
            prop_assert_eq!(bool::decode(&mut input).unwrap(), flag);
            prop_assert!(input.is_empty());
        }

        #[test]
        fn decoding_arbitrary_bytes_never_panics(bytes: Vec<u8>) {
            let _ = decode_exact::<Vec<u8>>(&bytes);
            let _ = decode_exact::<Option<u64>>(&bytes);
            let mut input = bytes.as_slice();
            let _ = decode_list::<Vec<u8>>(&mut input);
        }
    }

    proptest! {
        /// A list prefix claiming far more elements than the input holds is
        /// an error at once, whatever the element type's size.
        #[test]
        fn hostile_list_lengths_are_errors(len in 1u32..u32::MAX, tail in proptest::collection::vec(any::<u8>(), 0..64)) {
            let mut bytes = len.encode();
            bytes.extend_from_slice(&tail);
            let mut input = bytes.as_slice();
            let big = decode_list::<[u8; 4096]>(&mut input);
            prop_assert!(big.is_err() || (len as usize) * 4096 <= tail.len());
            let mut input = bytes.as_slice();
            let r = decode_list::<Vec<u8>>(&mut input);
            prop_assert!(r.is_err() || (len as usize) * 4 <= tail.len());
        }
    }

    #[test]
    fn truncated_and_trailing_input_are_errors() {
        let enc = 7u64.encode();
        assert!(matches!(decode_exact::<u64>(&enc[..5]), Err(DecodeError::UnexpectedEnd { .. })));
        let mut long = enc.clone();
        long.push(0);
        assert_eq!(decode_exact::<u64>(&long), Err(DecodeError::TrailingBytes(1)));
        assert!(matches!(decode_exact::<bool>(&[2]), Err(DecodeError::InvalidTag { .. })));
        let huge = (u32::MAX).encode();
        assert!(matches!(decode_exact::<Vec<u8>>(&huge), Err(DecodeError::TooLong { .. })));
    }
}
