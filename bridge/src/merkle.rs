//! Binary Merkle tree over a list of leaf hashes, with inclusion proofs.
//!
//! Leaves and inner nodes are hashed under different domains, an odd node at
//! the end of a level moves up unchanged (no duplication, so no two lists share
//! a root), and the root commits to the number of leaves.

use serde::{Deserialize, Serialize};

use crate::{Decode, DecodeError, Encode, Hash, ProofError, codec, hash_domain};

fn leaf_node(leaf: &Hash) -> Hash {
    hash_domain(b"optishard.merkle.leaf", &[&leaf.0])
}

fn inner_node(l: &Hash, r: &Hash) -> Hash {
    hash_domain(b"optishard.merkle.node", &[&l.0, &r.0])
}

fn seal(len: u64, top: &Hash) -> Hash {
    hash_domain(b"optishard.merkle.root", &[&len.to_be_bytes(), &top.0])
}

/// A built tree: every level kept, so proofs are cheap.
#[derive(Clone, Debug)]
pub struct MerkleTree {
    levels: Vec<Vec<Hash>>,
    root: Hash,
}

impl MerkleTree {
    /// Builds the tree over `leaves` (each already a hash of its item).
    pub fn new(leaves: &[Hash]) -> MerkleTree {
        let mut levels = vec![leaves.iter().map(leaf_node).collect::<Vec<_>>()];
        while levels.last().expect("non-empty").len() > 1 {
            let prev = levels.last().expect("non-empty");
            let next =
                prev.chunks(2).map(|c| if c.len() == 2 { inner_node(&c[0], &c[1]) } else { c[0] }).collect();
            levels.push(next);
        }
        let top = levels.last().and_then(|l| l.first()).copied().unwrap_or(Hash::ZERO);
        let root = seal(leaves.len() as u64, &top);
        MerkleTree { levels, root }
    }

    /// The root, committing to the leaves and their number.
    pub fn root(&self) -> Hash {
        self.root
    }

    /// Number of leaves.
    pub fn len(&self) -> usize {
        self.levels[0].len()
    }

    /// Whether the tree has no leaves.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Inclusion proof for leaf `index`, or `None` when out of range.
    pub fn proof(&self, index: usize) -> Option<MerkleProof> {
        if index >= self.len() {
            return None;
        }
        let mut siblings = Vec::new();
        let mut pos = index;
        for level in &self.levels[..self.levels.len() - 1] {
            let sib = pos ^ 1;
            if sib < level.len() {
                siblings.push(level[sib]);
            }
            pos /= 2;
        }
        Some(MerkleProof { index: index as u64, len: self.len() as u64, siblings })
    }
}

/// An append-only Merkle tree kept as its frontier: the roots of the
/// perfect subtrees ("peaks") the leaves so far make up, largest first (one
/// per set bit of the length, so at most 64). Its root is
/// [`MerkleTree::new`]'s over the same leaves (the odd node moving up
/// unchanged is exactly folding the peaks from the right), so every leaf
/// appended here has an ordinary [`MerkleProof`] against it. A block's
/// outbox and receipts are kept this way: the trace commitment after each
/// item carries their roots, and a witness carries the frontier so one
/// step can append to it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Frontier {
    len: u64,
    peaks: Vec<Hash>,
}

impl Frontier {
    /// The frontier of the empty list.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of leaves appended.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether nothing was appended.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Whether it has one peak per set bit of its length (always, unless
    /// it was built from untrusted bytes by other means than [`Decode`]).
    pub fn is_well_formed(&self) -> bool {
        self.peaks.len() == self.len.count_ones() as usize
    }

    /// Appends a leaf (the hash of an item): O(log n).
    pub fn push(&mut self, leaf: &Hash) {
        let mut node = leaf_node(leaf);
        let mut n = self.len;
        while n & 1 == 1 {
            let left = self.peaks.pop().expect("one peak per set bit of the length");
            node = inner_node(&left, &node);
            n >>= 1;
        }
        self.peaks.push(node);
        self.len += 1;
    }

    /// The root: equal to [`merkle_root`] of the leaves appended.
    pub fn root(&self) -> Hash {
        let top = self.peaks.iter().rev().copied().reduce(|right, left| inner_node(&left, &right));
        seal(self.len, &top.unwrap_or(Hash::ZERO))
    }

    /// The frontier of `leaves`.
    pub fn of(leaves: &[Hash]) -> Self {
        let mut f = Frontier::new();
        for l in leaves {
            f.push(l);
        }
        f
    }
}

impl Encode for Frontier {
    fn encode_to(&self, out: &mut Vec<u8>) {
        self.len.encode_to(out);
        for p in &self.peaks {
            p.encode_to(out);
        }
    }
}

impl Decode for Frontier {
    /// The number of peaks follows from the length (one per set bit), so
    /// no list length is read.
    fn decode(input: &mut &[u8]) -> Result<Self, DecodeError> {
        let len = u64::decode(input)?;
        let peaks = (0..len.count_ones()).map(|_| Hash::decode(input)).collect::<Result<_, _>>()?;
        Ok(Frontier { len, peaks })
    }
}

/// Merkle root of `leaves` without keeping the tree.
pub fn merkle_root(leaves: &[Hash]) -> Hash {
    MerkleTree::new(leaves).root()
}

/// Proof that a leaf sits at `index` in a tree of `len` leaves.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MerkleProof {
    /// Position of the leaf.
    pub index: u64,
    /// Number of leaves in the tree.
    pub len: u64,
    /// Sibling hashes from the leaf level upwards (levels where the node
    /// moved up alone contribute none).
    pub siblings: Vec<Hash>,
}

impl MerkleProof {
    /// Checks that `leaf` is at `self.index` under `root`.
    pub fn verify(&self, root: &Hash, leaf: &Hash) -> Result<(), ProofError> {
        let computed = self.compute_root(leaf)?;
        if &computed != root {
            return Err(ProofError::RootMismatch { computed, expected: *root });
        }
        Ok(())
    }

    /// The root this proof gives for `leaf`.
    pub fn compute_root(&self, leaf: &Hash) -> Result<Hash, ProofError> {
        let (index, len) = (self.index, self.len);
        if index >= len {
            return Err(ProofError::IndexOutOfRange { index, len });
        }
        let expected = path_length(index, len);
        if expected != self.siblings.len() {
            return Err(ProofError::WrongLength { index, len, expected, got: self.siblings.len() });
        }
        Ok(seal(len, &climb(leaf_node(leaf), index, len, &self.siblings)))
    }
}

/// Climbs from `node` at position `pos` of a level `width` nodes wide to
/// the top, combining with `siblings` in order (the caller checked their
/// number with [`path_length`]).
fn climb(mut node: Hash, mut pos: u64, mut width: u64, siblings: &[Hash]) -> Hash {
    let mut sibs = siblings.iter();
    while width > 1 {
        if pos ^ 1 < width {
            let s = sibs.next().expect("length checked");
            node = if pos.is_multiple_of(2) { inner_node(&node, s) } else { inner_node(s, &node) };
        }
        pos /= 2;
        width = width.div_ceil(2);
    }
    node
}

/// Siblings a path from position `pos` of a level `width` wide needs.
fn path_length(mut pos: u64, mut width: u64) -> usize {
    let mut n = 0;
    while width > 1 {
        if pos ^ 1 < width {
            n += 1;
        }
        pos /= 2;
        width = width.div_ceil(2);
    }
    n
}

/// Width of level `level` of a tree of `len` leaves.
fn level_width(len: u64, level: u32) -> u64 {
    (0..level).fold(len, |w, _| w.div_ceil(2))
}

/// The peaks of the first `j` leaves as `(level, position in that level)`,
/// largest first: perfect, aligned subtrees, so nodes of any longer tree.
fn prefix_peaks(j: u64) -> Vec<(u32, u64)> {
    let mut out = Vec::new();
    let mut offset = 0u64;
    for level in (0..64u32).rev() {
        if j & (1 << level) != 0 {
            out.push((level, offset >> level));
            offset += 1 << level;
        }
    }
    out
}

/// Proof that the first `prefix` leaves of a tree of `len` leaves are
/// exactly those a [`Frontier`] of `prefix` leaves was built from: each of
/// the frontier's peaks is a node of the tree, with its path to the root.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PrefixProof {
    /// Leaves in the full tree.
    pub len: u64,
    /// Leaves in the prefix.
    pub prefix: u64,
    /// One sibling path per peak, largest peak first.
    pub paths: Vec<Vec<Hash>>,
}

impl MerkleTree {
    /// The proof that the first `prefix` leaves are a prefix of this tree.
    pub fn prefix_proof(&self, prefix: usize) -> Option<PrefixProof> {
        if prefix == 0 || prefix > self.len() {
            return None;
        }
        let mut paths = Vec::new();
        for (level, pos) in prefix_peaks(prefix as u64) {
            let mut siblings = Vec::new();
            let mut p = pos as usize;
            for lvl in &self.levels[level as usize..self.levels.len() - 1] {
                if p ^ 1 < lvl.len() {
                    siblings.push(lvl[p ^ 1]);
                }
                p /= 2;
            }
            paths.push(siblings);
        }
        Some(PrefixProof { len: self.len() as u64, prefix: prefix as u64, paths })
    }
}

impl Frontier {
    /// Whether this frontier's leaves are the first ones of the tree with
    /// `root` (checked with `proof`: every peak climbs to `root`).
    pub fn is_prefix_of(&self, root: &Hash, proof: &PrefixProof) -> bool {
        let peaks = prefix_peaks(self.len);
        if !self.is_well_formed()
            || proof.prefix != self.len
            || self.len == 0
            || self.len > proof.len
            || proof.paths.len() != peaks.len()
        {
            return false;
        }
        peaks.iter().zip(&self.peaks).zip(&proof.paths).all(|(((level, pos), peak), path)| {
            let width = level_width(proof.len, *level);
            path.len() == path_length(*pos, width)
                && seal(proof.len, &climb(*peak, *pos, width, path)) == *root
        })
    }
}

impl Encode for PrefixProof {
    fn encode_to(&self, out: &mut Vec<u8>) {
        self.len.encode_to(out);
        self.prefix.encode_to(out);
        (self.paths.len() as u32).encode_to(out);
        for path in &self.paths {
            codec::encode_list(path, out);
        }
    }
}

impl Decode for PrefixProof {
    fn decode(input: &mut &[u8]) -> Result<Self, DecodeError> {
        let (len, prefix) = (u64::decode(input)?, u64::decode(input)?);
        let n = u32::decode(input)? as usize;
        if n > 64 {
            return Err(DecodeError::TooLong { what: "prefix proof", len: n, limit: 64 });
        }
        let mut paths = Vec::with_capacity(n);
        for _ in 0..n {
            let path: Vec<Hash> = codec::decode_list(input)?;
            if path.len() > 64 {
                return Err(DecodeError::TooLong { what: "prefix proof path", len: path.len(), limit: 64 });
            }
            paths.push(path);
        }
        Ok(PrefixProof { len, prefix, paths })
    }
}

impl Encode for MerkleProof {
    fn encode_to(&self, out: &mut Vec<u8>) {
        self.index.encode_to(out);
        self.len.encode_to(out);
        codec::encode_list(&self.siblings, out);
    }
}

impl Decode for MerkleProof {
    fn decode(input: &mut &[u8]) -> Result<Self, DecodeError> {
        Ok(MerkleProof {
            index: u64::decode(input)?,
            len: u64::decode(input)?,
            siblings: codec::decode_list(input)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode_exact;
    use proptest::prelude::*;

    fn leaves(n: usize, salt: u8) -> Vec<Hash> {
        (0..n).map(|i| Hash::of(&[salt, i as u8, (i >> 8) as u8])).collect()
    }

    proptest! {
        #[test]
        fn every_leaf_proves_and_round_trips(n in 1usize..200, salt: u8) {
            let ls = leaves(n, salt);
            let tree = MerkleTree::new(&ls);
            for (i, l) in ls.iter().enumerate() {
                let p = tree.proof(i).unwrap();
                prop_assert!(p.verify(&tree.root(), l).is_ok());
                let back: MerkleProof = decode_exact(&p.encode()).unwrap();
                prop_assert_eq!(&back, &p);
            }
        }

        #[test]
        fn wrong_leaf_index_or_root_fails(n in 2usize..100, pick: prop::sample::Index, salt: u8) {
            let ls = leaves(n, salt);
            let tree = MerkleTree::new(&ls);
            let i = pick.index(n);
            let p = tree.proof(i).unwrap();
            // a different leaf at the same position
            prop_assert!(p.verify(&tree.root(), &Hash::of(b"not a leaf")).is_err());
            // the same leaf claimed at another position
            let mut moved = p.clone();
            moved.index = ((i + 1) % n) as u64;
            prop_assert!(moved.verify(&tree.root(), &ls[i]).is_err());
            // a root of another list
            let other = MerkleTree::new(&leaves(n, salt.wrapping_add(1)));
            prop_assert!(p.verify(&other.root(), &ls[i]).is_err());
            // a tampered sibling
            if !p.siblings.is_empty() {
                let mut bad = p.clone();
                bad.siblings[0].0[0] ^= 1;
                prop_assert!(bad.verify(&tree.root(), &ls[i]).is_err());
            }
        }

        #[test]
        fn roots_commit_to_length(n in 1usize..64, salt: u8) {
            // a prefix never shares the root of the whole list
            let ls = leaves(n + 1, salt);
            prop_assert_ne!(merkle_root(&ls[..n]), merkle_root(&ls));
        }
    }

    proptest! {
        #[test]
        fn frontier_root_is_the_tree_root_at_every_length(n in 0usize..300, salt: u8) {
            let ls = leaves(n, salt);
            let mut f = Frontier::new();
            prop_assert_eq!(f.root(), merkle_root(&[]));
            for i in 0..n {
                f.push(&ls[i]);
                prop_assert_eq!(f.root(), merkle_root(&ls[..=i]));
            }
            let back: Frontier = decode_exact(&f.encode()).unwrap();
            prop_assert_eq!(back, f);
        }
    }

    proptest! {
        #[test]
        fn a_prefix_frontier_proves_against_the_full_tree_and_nothing_else(n in 1usize..200, j in 1usize..200, salt: u8) {
            let j = j.min(n);
            let ls = leaves(n, salt);
            let tree = MerkleTree::new(&ls);
            let proof = tree.prefix_proof(j).unwrap();
            let back: PrefixProof = decode_exact(&proof.encode()).unwrap();
            prop_assert_eq!(&back, &proof);
            let prefix = Frontier::of(&ls[..j]);
            prop_assert!(prefix.is_prefix_of(&tree.root(), &proof));
            // one leaf of the prefix changed: no longer a prefix
            let mut other = ls[..j].to_vec();
            other[j / 2] = Hash::of(b"another leaf");
            prop_assert!(!Frontier::of(&other).is_prefix_of(&tree.root(), &proof));
            // a prefix of another tree, or of another length
            let mut changed = ls.clone();
            changed[j - 1] = Hash::of(b"the last leaf of the prefix");
            prop_assert!(!prefix.is_prefix_of(&MerkleTree::new(&changed).root(), &proof));
            if j > 1 {
                prop_assert!(!Frontier::of(&ls[..j - 1]).is_prefix_of(&tree.root(), &proof));
            }
        }
    }

    #[test]
    fn frontier_decoding_reads_one_peak_per_set_bit() {
        let f = Frontier::of(&leaves(7, 1));
        let bytes = f.encode();
        assert_eq!(bytes.len(), 8 + 3 * 32);
        // a length claiming more peaks than the bytes hold fails cleanly
        let mut lie = u64::MAX.encode();
        lie.extend_from_slice(&bytes[8..]);
        assert!(decode_exact::<Frontier>(&lie).is_err());
    }

    #[test]
    fn empty_tree_has_a_root_and_no_proofs() {
        let t = MerkleTree::new(&[]);
        assert!(t.proof(0).is_none());
        assert_ne!(t.root(), merkle_root(&[Hash::ZERO]));
    }
}
