use thiserror::Error;

/// A byte string that is not the canonical encoding of the expected type.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DecodeError {
    /// The input ended before the value was complete.
    #[error("input ended early: needed {needed} more bytes for {what}")]
    UnexpectedEnd {
        /// What was being decoded.
        what: &'static str,
        /// How many bytes were missing.
        needed: usize,
    },
    /// Bytes were left over after the value.
    #[error("{0} trailing bytes after the value")]
    TrailingBytes(usize),
    /// A tag or flag byte outside its allowed values.
    #[error("invalid {what} tag {tag}")]
    InvalidTag {
        /// What was being decoded.
        what: &'static str,
        /// The offending byte.
        tag: u8,
    },
    /// A length prefix larger than the decoder allows.
    #[error("length {len} of {what} exceeds limit {limit}")]
    TooLong {
        /// What was being decoded.
        what: &'static str,
        /// The declared length.
        len: usize,
        /// The allowed maximum.
        limit: usize,
    },
    /// A signed structure whose signature was checked on the raw bytes,
    /// before decoding, and failed.
    #[error("{0}")]
    BadSignature(&'static str),
    /// Well-formed bytes for a value that breaks the type's invariants.
    #[error("invalid value: {0}")]
    Invalid(&'static str),
}

/// A Merkle proof that does not prove what it claims.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ProofError {
    /// The leaf index is outside the tree.
    #[error("leaf index {index} out of range for a tree of {len} leaves")]
    IndexOutOfRange {
        /// The claimed index.
        index: u64,
        /// The claimed number of leaves.
        len: u64,
    },
    /// The proof has the wrong number of siblings for its position.
    #[error("proof has {got} siblings, a tree of {len} leaves needs {expected} at index {index}")]
    WrongLength {
        /// The claimed index.
        index: u64,
        /// The claimed number of leaves.
        len: u64,
        /// Siblings the position needs.
        expected: usize,
        /// Siblings the proof has.
        got: usize,
    },
    /// The recomputed root differs from the trusted one.
    #[error("root mismatch: proof gives {computed}, expected {expected}")]
    RootMismatch {
        /// Root recomputed from the proof.
        computed: crate::Hash,
        /// Trusted root.
        expected: crate::Hash,
    },
}
