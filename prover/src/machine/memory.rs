//! Memory (and calldata) as a Merkle tree of 32-byte words, so a step
//! carries only the words an instruction touches, with their paths.

use bridge::{Hash, hash_domain};

/// Calldata padded to whole words, for its tree.
pub(super) fn padded(calldata: &[u8]) -> Vec<u8> {
    let mut v = calldata.to_vec();
    v.resize(calldata.len().div_ceil(32) * 32, 0);
    v
}

/// Depth of the memory tree: one leaf per 32-byte word, 2^32 words (far
/// past what gas can buy), so memory growth never changes the tree's
/// shape: words past the memory's size are zero leaves, and a step that
/// expands memory proves nothing about the new words.
pub const MEMORY_DEPTH: usize = 32;

fn word_leaf(word: &[u8]) -> Hash {
    hash_domain(b"optishard.memory_word", &[word])
}

fn memory_node(left: &Hash, right: &Hash) -> Hash {
    hash_domain(b"optishard.memory_node", &[&left.0, &right.0])
}

/// The roots of all-zero subtrees, by height.
fn zero_subtrees() -> &'static [Hash; MEMORY_DEPTH + 1] {
    static ZEROS: std::sync::OnceLock<[Hash; MEMORY_DEPTH + 1]> = std::sync::OnceLock::new();
    ZEROS.get_or_init(|| {
        let mut z = [word_leaf(&[0u8; 32]); MEMORY_DEPTH + 1];
        for h in 1..=MEMORY_DEPTH {
            z[h] = memory_node(&z[h - 1], &z[h - 1]);
        }
        z
    })
}

/// The levels of the memory tree that differ from zero subtrees: level 0
/// the words' leaves, each next level half as long.
fn memory_levels(memory: &[u8]) -> Vec<Vec<Hash>> {
    let z = zero_subtrees();
    let mut levels = vec![memory.chunks(32).map(word_leaf).collect::<Vec<_>>()];
    for h in 0..MEMORY_DEPTH {
        let below = &levels[h];
        let next = below.chunks(2).map(|pair| memory_node(&pair[0], pair.get(1).unwrap_or(&z[h]))).collect();
        levels.push(next);
    }
    levels
}

/// The Merkle root of memory's 32-byte words (memory is always a whole
/// number of words), in a tree of depth [`MEMORY_DEPTH`].
pub fn memory_root(memory: &[u8]) -> Hash {
    memory_levels(memory)[MEMORY_DEPTH].first().copied().unwrap_or(zero_subtrees()[MEMORY_DEPTH])
}

/// A word tree built by appending words, keeping only the left node at
/// each height that a later word still pairs with (at most
/// [`MEMORY_DEPTH`] hashes): identity's output tree, built a part per
/// sub-step. Its root is [`memory_root`] of the words appended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Frontier {
    /// Words appended.
    count: u64,
    /// At height `h`, when bit `h` of `count` is set: the root of the
    /// full subtree left of the next word's.
    left: [Hash; MEMORY_DEPTH],
}

impl Default for Frontier {
    fn default() -> Self {
        Frontier { count: 0, left: [Hash([0u8; 32]); MEMORY_DEPTH] }
    }
}

impl Frontier {
    /// Appends a word (`None` when it is not 32 bytes, or for the tree's
    /// last leaf: 2^32 - 1 words, more than gas can buy, is its capacity).
    pub fn push(&mut self, word: &[u8]) -> Option<()> {
        if word.len() != 32 || (self.count + 1) >> MEMORY_DEPTH != 0 {
            return None;
        }
        let mut node = word_leaf(word);
        let mut h = 0;
        while self.count >> h & 1 == 1 {
            node = memory_node(&self.left[h], &node);
            // consumed: a height whose bit is clear holds zero, so equal
            // trees are equal values
            self.left[h] = Hash([0u8; 32]);
            h += 1;
        }
        if h < MEMORY_DEPTH {
            self.left[h] = node;
        }
        self.count += 1;
        Some(())
    }

    /// The tree's root: the words appended, zero words after them.
    pub fn root(&self) -> Hash {
        let mut node = zero_subtrees()[0];
        for (h, (left, zero)) in self.left.iter().zip(zero_subtrees()).enumerate() {
            node = if self.count >> h & 1 == 1 { memory_node(left, &node) } else { memory_node(&node, zero) };
        }
        node
    }

    /// Its bytes in `s_j`: the count, then the left nodes it holds
    /// (lowest height first).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = self.count.to_be_bytes().to_vec();
        for h in 0..MEMORY_DEPTH {
            if self.count >> h & 1 == 1 {
                out.extend_from_slice(&self.left[h].0);
            }
        }
        out
    }

    /// From its count and the left nodes its count says it holds
    /// (`None` for another number of them, or a count past the tree).
    pub fn from_parts(count: u64, nodes: &[Hash]) -> Option<Frontier> {
        if count >> MEMORY_DEPTH != 0 || nodes.len() != count.count_ones() as usize {
            return None;
        }
        let mut f = Frontier { count, ..Default::default() };
        let mut given = nodes.iter();
        for h in 0..MEMORY_DEPTH {
            if count >> h & 1 == 1 {
                f.left[h] = *given.next()?;
            }
        }
        Some(f)
    }

    /// Words appended.
    pub fn count(&self) -> u64 {
        self.count
    }
}

/// Words of a word tree (memory, calldata, return data) with the
/// siblings that, with them, give the tree's root: a multiproof, so a
/// range of adjacent words shares its path above them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Words {
    /// Index and value of each word, ascending.
    pub words: Vec<(u64, [u8; 32])>,
    /// The siblings the words do not give, in the order [`Words::root`]
    /// takes them: level by level from the leaves, ascending within one.
    pub siblings: Vec<Hash>,
}

/// Folds `leaves` (ascending indices) up to the root, asking `sibling`
/// for each node's sibling the leaves do not give.
fn fold(leaves: &[(u64, Hash)], mut sibling: impl FnMut(usize, u64) -> Option<Hash>) -> Option<Hash> {
    let mut nodes: Vec<(u64, Hash)> = leaves.to_vec();
    if nodes.is_empty() || nodes.windows(2).any(|w| w[0].0 >= w[1].0) || nodes.last()?.0 >> MEMORY_DEPTH != 0
    {
        return None;
    }
    for h in 0..MEMORY_DEPTH {
        let mut up = Vec::with_capacity(nodes.len().div_ceil(2));
        let mut k = 0;
        while k < nodes.len() {
            let (i, node) = nodes[k];
            let parent = if i & 1 == 0 && nodes.get(k + 1).is_some_and(|n| n.0 == i + 1) {
                k += 1;
                memory_node(&node, &nodes[k].1)
            } else if i & 1 == 0 {
                memory_node(&node, &sibling(h, i + 1)?)
            } else {
                memory_node(&sibling(h, i - 1)?, &node)
            };
            up.push((i >> 1, parent));
            k += 1;
        }
        nodes = up;
    }
    nodes.first().map(|n| n.1)
}

impl Words {
    /// The words' indices.
    pub fn indices(&self) -> Vec<u64> {
        self.words.iter().map(|(i, _)| *i).collect()
    }

    /// The root of the tree the words sit in: `None` if there are no
    /// words, they are not ascending, or the siblings are not exactly
    /// those needed.
    pub fn root(&self) -> Option<Hash> {
        let leaves: Vec<_> = self.words.iter().map(|(i, w)| (*i, word_leaf(w))).collect();
        let mut given = self.siblings.iter();
        let root = fold(&leaves, |_, _| given.next().copied())?;
        given.next().is_none().then_some(root)
    }

    /// The root with the words' values replaced by `values` (same order).
    pub fn root_with(&self, values: &[[u8; 32]]) -> Option<Hash> {
        let words = self.words.iter().zip(values).map(|((i, _), w)| (*i, *w)).collect();
        Words { words, siblings: self.siblings.clone() }.root()
    }
}

/// Words `indices` (ascending) of `data` (whole words; zero past its end)
/// with their multiproof.
pub(super) fn prove_words(data: &[u8], indices: Vec<u64>) -> Words {
    if indices.is_empty() {
        return Words::default();
    }
    let levels = memory_levels(data);
    let z = zero_subtrees();
    let words: Vec<(u64, [u8; 32])> = indices
        .into_iter()
        .map(|i| {
            let mut word = [0u8; 32];
            if let Some(w) = data.get(i as usize * 32..i as usize * 32 + 32) {
                word.copy_from_slice(w);
            }
            (i, word)
        })
        .collect();
    let mut siblings = Vec::new();
    let leaves: Vec<_> = words.iter().map(|(i, w)| (*i, word_leaf(w))).collect();
    fold(&leaves, |h, i| {
        let s = levels[h].get(i as usize).copied().unwrap_or(z[h]);
        siblings.push(s);
        Some(s)
    });
    Words { words, siblings }
}
