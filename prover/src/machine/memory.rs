//! Memory (and calldata) as a Merkle tree of 32-byte words, so a step
//! carries only the words an instruction touches, with their paths.

use std::collections::BTreeMap;

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

/// The sibling path of word `index` in memory's tree, leaf level first.
pub fn memory_path(memory: &[u8], index: u64) -> Vec<Hash> {
    path_in(&memory_levels(memory), index)
}

fn path_in(levels: &[Vec<Hash>], index: u64) -> Vec<Hash> {
    let z = zero_subtrees();
    (0..MEMORY_DEPTH).map(|h| levels[h].get(((index >> h) ^ 1) as usize).copied().unwrap_or(z[h])).collect()
}

/// Words `indices` of `data` (whole words; zero past its end), each with
/// its path in `data`'s tree (built once for all of them).
pub(super) fn words_with_paths(data: &[u8], indices: Vec<u64>) -> Vec<(u64, [u8; 32], Vec<Hash>)> {
    if indices.is_empty() {
        return Vec::new();
    }
    let levels = memory_levels(data);
    indices
        .into_iter()
        .map(|i| {
            let mut word = [0u8; 32];
            if let Some(w) = data.get(i as usize * 32..i as usize * 32 + 32) {
                word.copy_from_slice(w);
            }
            (i, word, path_in(&levels, i))
        })
        .collect()
}

/// The root of a tree in which `words` (index, 32 bytes, sibling path)
/// sit, the paths all of one tree: siblings that are other given words'
/// nodes are taken from those (so several words' paths combine). `None`
/// if a path has the wrong length.
pub fn memory_root_with(words: &[(u64, [u8; 32], Vec<Hash>)]) -> Option<Hash> {
    if words.is_empty() || words.iter().any(|(_, _, p)| p.len() != MEMORY_DEPTH) {
        return None;
    }
    let mut nodes: BTreeMap<u64, Hash> = words.iter().map(|(i, w, _)| (*i, word_leaf(w))).collect();
    for h in 0..MEMORY_DEPTH {
        let mut up = BTreeMap::new();
        for (i, node) in &nodes {
            let sibling = match nodes.get(&(i ^ 1)) {
                Some(s) => *s,
                None => {
                    // the sibling from the path of a word under this node
                    let (_, _, path) = words.iter().find(|(w, _, _)| w >> h == *i)?;
                    path[h]
                }
            };
            let parent = if i & 1 == 0 { memory_node(node, &sibling) } else { memory_node(&sibling, node) };
            up.insert(i >> 1, parent);
        }
        nodes = up;
    }
    nodes.into_values().next()
}
