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
        let mut last = tail.to_vec();
        last.push(0x80);
        while last.len() % 64 != 56 {
            last.push(0);
        }
        last.extend_from_slice(&total.wrapping_mul(8).to_be_bytes());
        self.absorb(&last).expect("padded to whole blocks");
        let mut out = [0u8; 32];
        for (bytes, word) in out.chunks_exact_mut(4).zip(self.0) {
            bytes.copy_from_slice(&word.to_be_bytes());
        }
        B256::from(out)
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
