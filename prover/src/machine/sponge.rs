//! Keccak-256 absorbed a part at a time, so a long KECCAK256 or log can
//! run as several level-2 steps: each absorbs its part of the range into
//! the sponge `s_j` carries (its 200 bytes of state), the last one pads
//! and squeezes. A part is a whole number of blocks ([`RATE`]), so the
//! sponge never carries a partly filled block.

use alloy_primitives::B256;

/// Bytes absorbed per Keccak-f[1600] permutation (Keccak-256's rate).
pub(crate) const RATE: usize = 136;

/// The sponge's state between parts: 25 lanes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Sponge(pub [u64; 25]);

impl Sponge {
    /// Absorbs `blocks`, a whole number of [`RATE`]-byte blocks (the rest
    /// is `None`: a part that is not whole blocks is not a part).
    pub fn absorb(&mut self, blocks: &[u8]) -> Option<()> {
        if !blocks.len().is_multiple_of(RATE) {
            return None;
        }
        for block in blocks.chunks_exact(RATE) {
            self.absorb_block(block);
        }
        Some(())
    }

    fn absorb_block(&mut self, block: &[u8]) {
        for (lane, bytes) in self.0.iter_mut().zip(block.chunks_exact(8)) {
            *lane ^= u64::from_le_bytes(bytes.try_into().expect("eight bytes"));
        }
        keccak::f1600(&mut self.0);
    }

    /// Absorbs the last bytes (any length), pads as Keccak-256 does and
    /// squeezes the hash.
    pub fn finish(mut self, tail: &[u8]) -> B256 {
        let whole = tail.len() / RATE * RATE;
        for block in tail[..whole].chunks_exact(RATE) {
            self.absorb_block(block);
        }
        let mut last = [0u8; RATE];
        let rest = &tail[whole..];
        last[..rest.len()].copy_from_slice(rest);
        last[rest.len()] ^= 0x01;
        last[RATE - 1] ^= 0x80;
        self.absorb_block(&last);
        let mut out = [0u8; 32];
        for (bytes, lane) in out.chunks_exact_mut(8).zip(self.0) {
            bytes.copy_from_slice(&lane.to_le_bytes());
        }
        B256::from(out)
    }

    /// Its 200 bytes, for `s_j`.
    pub fn to_bytes(&self) -> [u8; 200] {
        let mut out = [0u8; 200];
        for (bytes, lane) in out.chunks_exact_mut(8).zip(self.0) {
            bytes.copy_from_slice(&lane.to_le_bytes());
        }
        out
    }

    /// From its 200 bytes.
    pub fn from_bytes(bytes: &[u8; 200]) -> Sponge {
        let mut lanes = [0u64; 25];
        for (lane, b) in lanes.iter_mut().zip(bytes.chunks_exact(8)) {
            *lane = u64::from_le_bytes(b.try_into().expect("eight bytes"));
        }
        Sponge(lanes)
    }
}

/// SHA-256's state between parts of the SHA-256 precompile's input (its
/// eight words; the bytes absorbed are the sub-step's count): a part is a
/// whole number of 64-byte blocks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sha256State(pub [u32; 8]);

impl Default for Sha256State {
    fn default() -> Self {
        Sha256State([
            0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
        ])
    }
}

impl Sha256State {
    /// Absorbs whole 64-byte blocks (`None` for any other length).
    pub fn absorb(&mut self, blocks: &[u8]) -> Option<()> {
        if !blocks.len().is_multiple_of(64) {
            return None;
        }
        #[allow(deprecated)] // sha2 0.10's block type, as revm's sha2 takes it
        for block in blocks.chunks_exact(64) {
            let block = sha2::digest::generic_array::GenericArray::clone_from_slice(block);
            sha2::compress256(&mut self.0, &[block]);
        }
        Some(())
    }

    /// Absorbs the last bytes of an input `total` bytes long, pads as
    /// SHA-256 does and gives the hash.
    pub fn finish(mut self, tail: &[u8], total: u64) -> B256 {
        self.absorb(&md_padded(tail, total.wrapping_mul(8).to_be_bytes())).expect("padded to whole blocks");
        let mut out = [0u8; 32];
        for (bytes, word) in out.chunks_exact_mut(4).zip(self.0) {
            bytes.copy_from_slice(&word.to_be_bytes());
        }
        B256::from(out)
    }
}

/// An input's last bytes padded as SHA-256 and RIPEMD-160 pad (0x80,
/// zeros, then the input's length in bits as the hash orders it) to whole
/// 64-byte blocks.
fn md_padded(tail: &[u8], bits: [u8; 8]) -> Vec<u8> {
    let mut last = tail.to_vec();
    last.push(0x80);
    while last.len() % 64 != 56 {
        last.push(0);
    }
    last.extend_from_slice(&bits);
    last
}

/// RIPEMD-160's state between parts of the RIPEMD-160 precompile's
/// input (its five words), as SHA-256's: a part is whole 64-byte blocks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ripemd160State(pub [u32; 5]);

impl Default for Ripemd160State {
    fn default() -> Self {
        Ripemd160State([0x6745_2301, 0xefcd_ab89, 0x98ba_dcfe, 0x1032_5476, 0xc3d2_e1f0])
    }
}

impl Ripemd160State {
    /// Absorbs whole 64-byte blocks (`None` for any other length), by
    /// the `ripemd` crate's compression (through its serializable state).
    pub fn absorb(&mut self, blocks: &[u8]) -> Option<()> {
        use ripemd::block_api::Ripemd160Core;
        use ripemd::digest::block_api::{Block, UpdateCore};
        use ripemd::digest::common::hazmat::{SerializableState, SerializedState};
        if !blocks.len().is_multiple_of(64) {
            return None;
        }
        // the state's 20 bytes (little-endian words) and a block count,
        // which only the crate's own padding reads
        let mut bytes = SerializedState::<Ripemd160Core>::default();
        for (chunk, w) in bytes.chunks_exact_mut(4).zip(self.0) {
            chunk.copy_from_slice(&w.to_le_bytes());
        }
        let mut core = Ripemd160Core::deserialize(&bytes).ok()?;
        let blocks: Vec<Block<Ripemd160Core>> =
            blocks.chunks_exact(64).map(|b| Block::<Ripemd160Core>::try_from(b).expect("64 bytes")).collect();
        core.update_blocks(&blocks);
        let bytes = core.serialize();
        for (w, chunk) in self.0.iter_mut().zip(bytes.chunks_exact(4)) {
            *w = u32::from_le_bytes(chunk.try_into().expect("four bytes"));
        }
        Some(())
    }

    /// Absorbs the last bytes of an input `total` bytes long, pads as
    /// RIPEMD-160 does (the length little-endian) and gives the
    /// precompile's output: the 20-byte hash after 12 zero bytes.
    pub fn finish(mut self, tail: &[u8], total: u64) -> B256 {
        self.absorb(&md_padded(tail, total.wrapping_mul(8).to_le_bytes())).expect("padded to whole blocks");
        let mut out = [0u8; 32];
        for (bytes, word) in out[12..].chunks_exact_mut(4).zip(self.0) {
            bytes.copy_from_slice(&word.to_le_bytes());
        }
        B256::from(out)
    }
}

/// What a long-input call to a hashing precompile (SHA-256, RIPEMD-160)
/// or to identity has made of the parts of its input absorbed so far: a
/// hash's state, or for identity the word tree of its output (which is
/// its input) built so far.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DigestState {
    /// SHA-256 (precompile 0x02).
    Sha256(Sha256State),
    /// RIPEMD-160 (precompile 0x03).
    Ripemd160(Ripemd160State),
    /// Identity (precompile 0x04): the output's word tree so far.
    Identity(super::memory::Frontier),
}

impl DigestState {
    /// The precompile's starting state, if `address` is one of the three.
    pub fn start(address: &alloy_primitives::Address) -> Option<DigestState> {
        let with_last = |b: u8| *address == alloy_primitives::Address::with_last_byte(b);
        if with_last(2) {
            Some(DigestState::Sha256(Sha256State::default()))
        } else if with_last(3) {
            Some(DigestState::Ripemd160(Ripemd160State::default()))
        } else if with_last(4) {
            Some(DigestState::Identity(super::memory::Frontier::default()))
        } else {
            None
        }
    }

    /// Whether it is the state `address`'s precompile keeps.
    pub fn is_of(&self, address: &alloy_primitives::Address) -> bool {
        DigestState::start(address)
            .is_some_and(|s| std::mem::discriminant(&s) == std::mem::discriminant(self))
    }

    /// Absorbs a part: whole 64-byte blocks (`None` for any other length).
    pub fn absorb(&mut self, part: &[u8]) -> Option<()> {
        match self {
            DigestState::Sha256(s) => s.absorb(part),
            DigestState::Ripemd160(s) => s.absorb(part),
            DigestState::Identity(f) => {
                if !part.len().is_multiple_of(64) {
                    return None;
                }
                part.chunks_exact(32).try_for_each(|w| f.push(w))
            }
        }
    }

    /// Absorbs the input's last bytes (`total` bytes in all) and gives
    /// the output's hash in `s_j` terms: a hash precompile's 32-byte
    /// output, or identity's output tree root.
    pub fn finish(self, tail: &[u8], total: u64) -> Option<B256> {
        Some(match self {
            DigestState::Sha256(s) => s.finish(tail, total),
            DigestState::Ripemd160(s) => s.finish(tail, total),
            DigestState::Identity(mut f) => {
                for w in tail.chunks(32) {
                    let mut word = [0u8; 32];
                    word[..w.len()].copy_from_slice(w);
                    f.push(&word)?;
                }
                B256::from(f.root().0)
            }
        })
    }

    /// Its bytes in `s_j`: a tag, then the state.
    pub fn to_bytes(&self) -> Vec<u8> {
        match self {
            DigestState::Sha256(s) => {
                [&[0u8][..], &s.0.iter().flat_map(|w| w.to_be_bytes()).collect::<Vec<_>>()].concat()
            }
            DigestState::Ripemd160(s) => {
                [&[1u8][..], &s.0.iter().flat_map(|w| w.to_be_bytes()).collect::<Vec<_>>()].concat()
            }
            DigestState::Identity(f) => [&[2u8][..], &f.to_bytes()].concat(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha256_absorbed_in_parts_is_sha256_of_the_whole() {
        use sha2::Digest;
        let data: Vec<u8> = (0..9000u32).map(|i| (i * 13 + 5) as u8).collect();
        for len in [0, 1, 55, 56, 63, 64, 65, 4352, 4353, 8999] {
            let data = &data[..len];
            let part = 4352;
            let whole = len / part * part;
            let mut state = Sha256State::default();
            for p in data[..whole].chunks(part) {
                state.absorb(p).expect("whole blocks");
            }
            let expected = B256::from_slice(&sha2::Sha256::digest(data));
            assert_eq!(state.finish(&data[whole..], len as u64), expected, "{len}");
        }
    }

    #[test]
    fn ripemd160_absorbed_in_parts_is_the_precompiles_output() {
        use ripemd::Digest;
        let data: Vec<u8> = (0..9000u32).map(|i| (i * 29 + 1) as u8).collect();
        for len in [0, 1, 55, 56, 63, 64, 65, 4352, 4353, 8999] {
            let data = &data[..len];
            let part = 4352;
            let whole = len / part * part;
            let mut state = Ripemd160State::default();
            for p in data[..whole].chunks(part) {
                state.absorb(p).expect("whole blocks");
            }
            let mut expected = [0u8; 32];
            expected[12..].copy_from_slice(&ripemd::Ripemd160::digest(data));
            assert_eq!(state.finish(&data[whole..], len as u64), B256::from(expected), "{len}");
        }
        assert!(Ripemd160State::default().absorb(&[0u8; 100]).is_none());
    }

    #[test]
    fn identity_absorbed_in_parts_is_its_outputs_word_tree() {
        let data: Vec<u8> = (0..20000u32).map(|i| (i * 31 + 7) as u8).collect();
        for len in [1, 31, 32, 33, 4352, 4353, 8704, 13057, 20000] {
            let data = &data[..len];
            let part = 4352;
            let whole = (len - 1) / part * part;
            let mut state = DigestState::Identity(Default::default());
            for p in data[..whole].chunks(part) {
                state.absorb(p).expect("whole words");
            }
            let root = state.finish(&data[whole..], len as u64).expect("a tree");
            assert_eq!(root.0, super::super::DataRef::of_bytes(data).root.0, "{len}");
        }
    }

    #[test]
    fn a_hash_absorbed_in_parts_is_keccak256_of_the_whole() {
        let data: Vec<u8> = (0..5000u32).map(|i| (i * 7 + 3) as u8).collect();
        for len in [0, 1, 135, 136, 137, 271, 272, 4352, 4999, 5000] {
            let data = &data[..len];
            for part in [RATE, 2 * RATE, 32 * RATE] {
                let mut sponge = Sponge::default();
                let whole = len / part * part;
                for p in data[..whole].chunks(part) {
                    sponge.absorb(p).expect("whole blocks");
                    sponge = Sponge::from_bytes(&sponge.to_bytes());
                }
                assert_eq!(
                    sponge.finish(&data[whole..]),
                    alloy_primitives::keccak256(data),
                    "{len} by {part}"
                );
            }
        }
        assert!(Sponge::default().absorb(&[0u8; 100]).is_none(), "a part of whole blocks only");
    }
}
