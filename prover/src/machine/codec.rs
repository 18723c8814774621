//! The canonical encoding of a one-instruction step: every length is
//! checked before what it counts is read.

use bridge::{Decode, DecodeError, Encode, Hash};

use super::*;

fn too_long(what: &'static str, len: usize, limit: usize) -> DecodeError {
    DecodeError::TooLong { what, len, limit }
}

/// A length prefix, checked against `limit` before anything it counts
/// is read.
fn bounded_len(input: &mut &[u8], what: &'static str, limit: usize) -> Result<usize, DecodeError> {
    let n = u32::decode(input)? as usize;
    if n > limit {
        return Err(too_long(what, n, limit));
    }
    Ok(n)
}

fn bounded_bytes(input: &mut &[u8], what: &'static str, limit: usize) -> Result<Vec<u8>, DecodeError> {
    let n = bounded_len(input, what, limit)?;
    if input.len() < n {
        return Err(DecodeError::UnexpectedEnd { what, needed: n - input.len() });
    }
    let (head, tail) = input.split_at(n);
    *input = tail;
    Ok(head.to_vec())
}

type Words = Vec<(u64, [u8; 32], Vec<Hash>)>;

fn encode_words(words: &Words, out: &mut Vec<u8>) {
    (words.len() as u32).encode_to(out);
    for (i, w, path) in words {
        i.encode_to(out);
        w.encode_to(out);
        for h in path {
            h.encode_to(out);
        }
    }
}

/// Words with their paths: at most two, each path [`MEMORY_DEPTH`] long.
fn memory_words(input: &mut &[u8]) -> Result<Words, DecodeError> {
    let n = bounded_len(input, "step words", MAX_STEP_MEMORY_WORDS)?;
    let mut words = Vec::with_capacity(n);
    for _ in 0..n {
        let i = u64::decode(input)?;
        let w = <[u8; 32]>::decode(input)?;
        let path = (0..MEMORY_DEPTH).map(|_| Hash::decode(input)).collect::<Result<_, _>>()?;
        words.push((i, w, path));
    }
    Ok(words)
}

fn word(input: &mut &[u8]) -> Result<U256, DecodeError> {
    Ok(U256::from_be_bytes(<[u8; 32]>::decode(input)?))
}

impl Encode for MachineState {
    fn encode_to(&self, out: &mut Vec<u8>) {
        self.index.encode_to(out);
        self.pc.encode_to(out);
        self.opcode.encode_to(out);
        self.depth.encode_to(out);
        self.code_hash.0.encode_to(out);
        self.gas_remaining.encode_to(out);
        (self.gas_refunded as u64).encode_to(out);
        for h in [&self.frames, &self.input, &self.stack] {
            h.encode_to(out);
        }
        self.stack_len.encode_to(out);
        self.memory.encode_to(out);
        self.memory_len.encode_to(out);
        self.return_data.encode_to(out);
        self.journal.encode_to(out);
    }
}

impl Decode for MachineState {
    fn decode(input: &mut &[u8]) -> Result<Self, DecodeError> {
        Ok(MachineState {
            index: u64::decode(input)?,
            pc: u64::decode(input)?,
            opcode: u8::decode(input)?,
            depth: u64::decode(input)?,
            code_hash: B256::from(<[u8; 32]>::decode(input)?),
            gas_remaining: u64::decode(input)?,
            gas_refunded: u64::decode(input)? as i64,
            frames: Hash::decode(input)?,
            input: Hash::decode(input)?,
            stack: Hash::decode(input)?,
            stack_len: u32::decode(input)?,
            memory: Hash::decode(input)?,
            memory_len: u64::decode(input)?,
            return_data: Hash::decode(input)?,
            journal: Hash::decode(input)?,
        })
    }
}

impl Encode for InstructionStep {
    fn encode_to(&self, out: &mut Vec<u8>) {
        self.state.encode_to(out);
        self.code.encode_to(out);
        (self.top.len() as u32).encode_to(out);
        for w in &self.top {
            w.to_be_bytes::<32>().encode_to(out);
        }
        self.below.encode_to(out);
        encode_words(&self.memory, out);
        match &self.input {
            None => 0u8.encode_to(out),
            Some(i) => {
                1u8.encode_to(out);
                i.target.0.0.encode_to(out);
                i.caller.0.0.encode_to(out);
                i.value.to_be_bytes::<32>().encode_to(out);
                i.len.encode_to(out);
                i.root.encode_to(out);
                encode_words(&i.words, out);
            }
        }
    }
}

impl Decode for InstructionStep {
    fn decode(input: &mut &[u8]) -> Result<Self, DecodeError> {
        let state = MachineState::decode(input)?;
        let code = bounded_bytes(input, "step code", MAX_STEP_CODE)?;
        let n = bounded_len(input, "step stack words", MAX_STEP_WORDS)?;
        let top = (0..n).map(|_| word(input)).collect::<Result<_, _>>()?;
        let below = Hash::decode(input)?;
        let memory = memory_words(input)?;
        let input_part = match u8::decode(input)? {
            0 => None,
            1 => Some(StepInput {
                target: Address::from(<[u8; 20]>::decode(input)?),
                caller: Address::from(<[u8; 20]>::decode(input)?),
                value: word(input)?,
                len: u64::decode(input)?,
                root: Hash::decode(input)?,
                words: memory_words(input)?,
            }),
            tag => return Err(DecodeError::InvalidTag { what: "step input", tag }),
        };
        Ok(InstructionStep { state, code, top, below, memory, input: input_part })
    }
}
