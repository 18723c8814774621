//! Proofs against the state root, and the partial tree the stateless
//! executor rebuilds from them.
//!
//! The tree is a Jellyfish Merkle tree; logically it is a binary sparse
//! Merkle tree over 256-bit key hashes in which a leaf sits at the shallowest
//! depth where it is alone in its subtree. Its hashing, reproduced here with
//! blake3:
//! - leaf: `H("JMT::LeafNode" ‖ key_hash ‖ H(value))`
//! - inner node: `H("JMT::IntrnalNode" ‖ left ‖ right)`
//! - empty subtree: the constant `SPARSE_MERKLE_PLACEHOLDER_HASH__`
//!
//! Proofs are our own types (converted from jmt's), so a verifier needs only
//! this module. A property test checks that [`PartialTree`] computes exactly
//! the roots jmt computes.

use borsh::{BorshDeserialize, BorshSerialize};
use serde::{Deserialize, Serialize};

use crate::{Error, Result};

const LEAF_DOMAIN: &[u8] = b"JMT::LeafNode";
const INTERNAL_DOMAIN: &[u8] = b"JMT::IntrnalNode";
/// Hash of an empty subtree.
pub const PLACEHOLDER: [u8; 32] = *b"SPARSE_MERKLE_PLACEHOLDER_HASH__";

fn h(parts: &[&[u8]]) -> [u8; 32] {
    let mut hasher = blake3::Hasher::new();
    for p in parts {
        hasher.update(p);
    }
    *hasher.finalize().as_bytes()
}

/// blake3 of a value, as stored in a leaf.
pub fn value_hash(value: &[u8]) -> [u8; 32] {
    h(&[value])
}

fn leaf_hash(key: &[u8; 32], value_hash: &[u8; 32]) -> [u8; 32] {
    h(&[LEAF_DOMAIN, key, value_hash])
}

fn internal_hash(l: &[u8; 32], r: &[u8; 32]) -> [u8; 32] {
    h(&[INTERNAL_DOMAIN, l, r])
}

/// Bit `i` of a key hash, most significant first.
fn bit(key: &[u8; 32], i: usize) -> bool {
    key[i / 8] & (0x80 >> (i % 8)) != 0
}

fn common_prefix_bits(a: &[u8; 32], b: &[u8; 32]) -> usize {
    (0..256).find(|&i| bit(a, i) != bit(b, i)).unwrap_or(256)
}

/// A leaf of the tree.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, BorshSerialize, BorshDeserialize)]
pub struct SmtLeaf {
    /// The key's position.
    pub key_hash: [u8; 32],
    /// blake3 of the value.
    pub value_hash: [u8; 32],
}

impl SmtLeaf {
    fn hash(&self) -> [u8; 32] {
        leaf_hash(&self.key_hash, &self.value_hash)
    }
}

/// A sibling on a proof path, with its kind so deletions can collapse.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, BorshSerialize, BorshDeserialize)]
pub enum SmtSibling {
    /// An empty subtree.
    Null,
    /// A subtree with at least two leaves, given by its two children.
    Internal {
        /// Left child hash.
        left: [u8; 32],
        /// Right child hash.
        right: [u8; 32],
    },
    /// A subtree holding exactly one leaf.
    Leaf(SmtLeaf),
}

impl SmtSibling {
    fn hash(&self) -> [u8; 32] {
        match self {
            SmtSibling::Null => PLACEHOLDER,
            SmtSibling::Internal { left, right } => internal_hash(left, right),
            SmtSibling::Leaf(l) => l.hash(),
        }
    }
}

/// Proof of a key's value, or of its absence, against a state root.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, BorshSerialize, BorshDeserialize)]
pub struct SmtProof {
    /// The leaf found where the key would be: the key's own leaf (inclusion),
    /// another key alone in that subtree, or none (both prove absence).
    pub leaf: Option<SmtLeaf>,
    /// Siblings from the bottom of the path to the root.
    pub siblings: Vec<SmtSibling>,
}

impl SmtProof {
    /// Converts jmt's proof, whose fields jmt keeps private, through its
    /// borsh encoding (same layout as ours).
    pub fn from_jmt<H: jmt::SimpleHasher>(p: &jmt::proof::SparseMerkleProof<H>) -> Result<Self> {
        let bytes = borsh::to_vec(p).map_err(|e| Error::Store(format!("encode proof: {e}")))?;
        SmtProof::try_from_slice(&bytes).map_err(|e| Error::Store(format!("convert proof: {e}")))
    }

    /// Checks that `key_hash` maps to `value` (or is absent, for `None`) under `root`.
    pub fn verify(&self, root: &[u8; 32], key_hash: &[u8; 32], value: Option<&[u8]>) -> Result<()> {
        let fail = |reason: String| Error::InvalidProof { key: hex_key(key_hash), reason };
        if self.siblings.len() > 256 {
            return Err(fail(format!("{} siblings", self.siblings.len())));
        }
        match (value, &self.leaf) {
            (Some(v), Some(leaf)) => {
                if &leaf.key_hash != key_hash {
                    return Err(fail("proof is for another key".into()));
                }
                if leaf.value_hash != value_hash(v) {
                    return Err(fail("value does not match".into()));
                }
            }
            (Some(_), None) => return Err(fail("expected inclusion, proof shows absence".into())),
            (None, Some(leaf)) => {
                if &leaf.key_hash == key_hash {
                    return Err(fail("key is present, expected absence".into()));
                }
                if common_prefix_bits(&leaf.key_hash, key_hash) < self.siblings.len() {
                    return Err(fail("other leaf is not on the key's path".into()));
                }
            }
            (None, None) => {}
        }
        let computed = self.root_for(key_hash);
        if &computed != root {
            return Err(fail("root mismatch".into()));
        }
        Ok(())
    }

    fn root_for(&self, key_hash: &[u8; 32]) -> [u8; 32] {
        let mut node = self.leaf.map_or(PLACEHOLDER, |l| l.hash());
        let depth = self.siblings.len();
        for (j, sib) in self.siblings.iter().enumerate() {
            let d = depth - 1 - j;
            node = if bit(key_hash, d) {
                internal_hash(&sib.hash(), &node)
            } else {
                internal_hash(&node, &sib.hash())
            };
        }
        node
    }

    /// Whether the proof's path has only empty subtrees to its left: its
    /// key is the least in the tree.
    pub fn is_leftmost(&self, key_hash: &[u8; 32]) -> bool {
        let depth = self.siblings.len();
        self.siblings.iter().enumerate().all(|(j, s)| !bit(key_hash, depth - 1 - j) || *s == SmtSibling::Null)
    }

    /// Encoded size in bytes (what a witness pays for this proof).
    pub fn encoded_len(&self) -> usize {
        borsh::to_vec(self).map(|v| v.len()).unwrap_or(0)
    }
}

fn hex_key(k: &[u8; 32]) -> String {
    let mut s = String::from("0x");
    for b in k {
        s.push_str(&format!("{b:02x}"));
    }
    s
}

/// The part of the tree opened by a set of proofs: enough to recompute the
/// root after updating any of the proven keys.
#[derive(Clone, Debug)]
pub enum PartialTree {
    /// An empty subtree.
    Empty,
    /// A subtree with exactly one leaf.
    Leaf(SmtLeaf),
    /// A subtree known only by its two children's hashes (at least two
    /// leaves).
    Opaque([u8; 32], [u8; 32]),
    /// An opened inner node.
    Branch(Box<PartialTree>, Box<PartialTree>),
}

impl PartialTree {
    /// Opens the tree along every proof; each must already be verified
    /// against the same root.
    pub fn from_proofs<'a>(proofs: impl IntoIterator<Item = (&'a [u8; 32], &'a SmtProof)>) -> Result<Self> {
        let mut tree: Option<PartialTree> = None;
        for (key, proof) in proofs {
            let path = Self::path(key, proof);
            tree = Some(match tree {
                None => path,
                Some(t) => Self::merge(t, path)?,
            });
        }
        Ok(tree.unwrap_or(PartialTree::Empty))
    }

    fn path(key: &[u8; 32], proof: &SmtProof) -> PartialTree {
        let mut node = proof.leaf.map_or(PartialTree::Empty, PartialTree::Leaf);
        let depth = proof.siblings.len();
        for (j, sib) in proof.siblings.iter().enumerate() {
            let d = depth - 1 - j;
            let sib = match sib {
                SmtSibling::Null => PartialTree::Empty,
                SmtSibling::Internal { left, right } => PartialTree::Opaque(*left, *right),
                SmtSibling::Leaf(l) => PartialTree::Leaf(*l),
            };
            node = if bit(key, d) {
                PartialTree::Branch(Box::new(sib), Box::new(node))
            } else {
                PartialTree::Branch(Box::new(node), Box::new(sib))
            };
        }
        node
    }

    fn merge(a: PartialTree, b: PartialTree) -> Result<PartialTree> {
        use PartialTree::*;
        Ok(match (a, b) {
            (Branch(l1, r1), Branch(l2, r2)) => {
                Branch(Box::new(Self::merge(*l1, *l2)?), Box::new(Self::merge(*r1, *r2)?))
            }
            (b @ Branch(..), Opaque(..)) | (Opaque(..), b @ Branch(..)) => b,
            (Empty, Empty) => Empty,
            (Opaque(l1, r1), Opaque(l2, r2)) if (l1, r1) == (l2, r2) => Opaque(l1, r1),
            (Leaf(x), Leaf(y)) if x == y => Leaf(x),
            (a, b) => {
                return Err(Error::WitnessMismatch(format!(
                    "proofs disagree: {:?} vs {:?}",
                    a.hash(),
                    b.hash()
                )));
            }
        })
    }

    /// The root hash of the (partially known) tree.
    pub fn hash(&self) -> [u8; 32] {
        match self {
            PartialTree::Empty => PLACEHOLDER,
            PartialTree::Leaf(l) => l.hash(),
            PartialTree::Opaque(l, r) => internal_hash(l, r),
            PartialTree::Branch(l, r) => internal_hash(&l.hash(), &r.hash()),
        }
    }

    /// The proof of `key` (present or absent) in a tree opened along its
    /// path (siblings known by their children suffice): `None` if the
    /// path itself runs into an unopened subtree.
    pub fn prove(&self, key: &[u8; 32]) -> Option<SmtProof> {
        let mut siblings = Vec::new();
        let mut node = self;
        let mut depth = 0;
        let leaf = loop {
            match node {
                PartialTree::Empty => break None,
                PartialTree::Leaf(l) => break Some(*l),
                PartialTree::Opaque(..) => return None,
                PartialTree::Branch(l, r) => {
                    let (next, sibling) = if bit(key, depth) { (r, l) } else { (l, r) };
                    siblings.push(match &**sibling {
                        PartialTree::Empty => SmtSibling::Null,
                        PartialTree::Leaf(x) => SmtSibling::Leaf(*x),
                        PartialTree::Branch(a, b) => SmtSibling::Internal { left: a.hash(), right: b.hash() },
                        PartialTree::Opaque(l, r) => SmtSibling::Internal { left: *l, right: *r },
                    });
                    node = next;
                    depth += 1;
                }
            }
        };
        siblings.reverse();
        Some(SmtProof { leaf, siblings })
    }

    /// Sets `key` to `value` (`None` deletes it).
    pub fn update(&mut self, key: &[u8; 32], value: Option<&[u8]>) -> Result<()> {
        let leaf = value.map(|v| SmtLeaf { key_hash: *key, value_hash: value_hash(v) });
        let taken = std::mem::replace(self, PartialTree::Empty);
        *self = Self::update_at(taken, key, leaf, 0)?;
        Ok(())
    }

    fn update_at(
        node: PartialTree,
        key: &[u8; 32],
        leaf: Option<SmtLeaf>,
        depth: usize,
    ) -> Result<PartialTree> {
        use PartialTree::*;
        Ok(match node {
            Empty => leaf.map_or(Empty, Leaf),
            Leaf(old) if &old.key_hash == key => leaf.map_or(Empty, Leaf),
            Leaf(old) => match leaf {
                None => Leaf(old),
                Some(new) => Self::split(old, new, depth),
            },
            Opaque(..) => return Err(Error::MissingPath(hex_key(key))),
            Branch(l, r) => {
                let (l, r) = if bit(key, depth) {
                    (*l, Self::update_at(*r, key, leaf, depth + 1)?)
                } else {
                    (Self::update_at(*l, key, leaf, depth + 1)?, *r)
                };
                // keep the tree canonical: a lone leaf moves up, empty pairs vanish
                match (l, r) {
                    (Empty, Empty) => Empty,
                    (Empty, Leaf(x)) | (Leaf(x), Empty) => Leaf(x),
                    (l, r) => Branch(Box::new(l), Box::new(r)),
                }
            }
        })
    }

    fn split(old: SmtLeaf, new: SmtLeaf, depth: usize) -> PartialTree {
        let fork = common_prefix_bits(&old.key_hash, &new.key_hash);
        let (mut node, _) = if bit(&new.key_hash, fork) {
            (PartialTree::Branch(Box::new(PartialTree::Leaf(old)), Box::new(PartialTree::Leaf(new))), ())
        } else {
            (PartialTree::Branch(Box::new(PartialTree::Leaf(new)), Box::new(PartialTree::Leaf(old))), ())
        };
        for d in (depth..fork).rev() {
            node = if bit(&new.key_hash, d) {
                PartialTree::Branch(Box::new(PartialTree::Empty), Box::new(node))
            } else {
                PartialTree::Branch(Box::new(node), Box::new(PartialTree::Empty))
            };
        }
        node
    }
}
