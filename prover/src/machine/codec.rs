//! The canonical encoding of a one-instruction step: every length is
//! checked before what it counts is read.

use bridge::{Decode, DecodeError, Encode, Hash};

use super::settle::{CodeWrite, CommitState, CommitStep, EpilogueStep};
use super::*;
use crate::state::{SmtLeaf, SmtProof, SmtSibling, StateKey, StateProof};

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

fn encode_words(words: &Words, out: &mut Vec<u8>) {
    (words.words.len() as u32).encode_to(out);
    for (i, w) in &words.words {
        i.encode_to(out);
        w.encode_to(out);
    }
    (words.siblings.len() as u32).encode_to(out);
    for h in &words.siblings {
        h.encode_to(out);
    }
}

/// Words with their multiproof: at most [`MAX_STEP_MEMORY_WORDS`] words
/// and [`MEMORY_DEPTH`] siblings a word.
fn memory_words(input: &mut &[u8]) -> Result<Words, DecodeError> {
    let n = bounded_len(input, "step words", MAX_STEP_MEMORY_WORDS)?;
    // allocate only what the bytes left can hold (40 a word, 32 a sibling)
    enough(input, "step words", n * 40)?;
    let mut words = Vec::with_capacity(n);
    for _ in 0..n {
        words.push((u64::decode(input)?, <[u8; 32]>::decode(input)?));
    }
    let n = bounded_len(input, "word siblings", MAX_STEP_MEMORY_WORDS * MEMORY_DEPTH)?;
    enough(input, "word siblings", n * 32)?;
    let siblings = (0..n).map(|_| Hash::decode(input)).collect::<Result<_, _>>()?;
    Ok(Words { words, siblings })
}

/// Fails unless `input` holds at least `needed` more bytes.
fn enough(input: &[u8], what: &'static str, needed: usize) -> Result<(), DecodeError> {
    match needed.checked_sub(input.len()) {
        Some(short) if short > 0 => Err(DecodeError::UnexpectedEnd { what, needed: short }),
        _ => Ok(()),
    }
}

fn encode_data(d: &StepData, out: &mut Vec<u8>) {
    d.len.encode_to(out);
    d.root.encode_to(out);
    d.offset.encode_to(out);
    encode_words(&d.words, out);
}

fn decode_data(input: &mut &[u8]) -> Result<StepData, DecodeError> {
    Ok(StepData {
        len: u64::decode(input)?,
        root: Hash::decode(input)?,
        offset: u64::decode(input)?,
        words: memory_words(input)?,
    })
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
        self.is_static.encode_to(out);
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
        out.extend_from_slice(&self.partial.to_bytes());
    }
}

impl Decode for Partial {
    fn decode(input: &mut &[u8]) -> Result<Self, DecodeError> {
        Ok(match u8::decode(input)? {
            0 => Partial::None,
            1 => Partial::Range {
                done: u64::decode(input)?,
                sponge: Sponge::from_bytes(&<[u8; 200]>::decode(input)?),
            },
            2 => Partial::CopyIn {
                dest: u64::decode(input)?,
                len: u64::decode(input)?,
                done: u64::decode(input)?,
            },
            3 => {
                let done = u64::decode(input)?;
                let state = match u8::decode(input)? {
                    0 => {
                        let mut words = [0u32; 8];
                        for w in &mut words {
                            *w = u32::decode(input)?;
                        }
                        DigestState::Sha256(Sha256State(words))
                    }
                    1 => {
                        let mut words = [0u32; 5];
                        for w in &mut words {
                            *w = u32::decode(input)?;
                        }
                        DigestState::Ripemd160(Ripemd160State(words))
                    }
                    2 => {
                        let count = u64::decode(input)?;
                        // at most one node per height: bounded before reading
                        let n = if count >> MEMORY_DEPTH == 0 { count.count_ones() } else { u32::MAX };
                        if n as usize > MEMORY_DEPTH {
                            return Err(DecodeError::InvalidTag { what: "identity's output tree", tag: 2 });
                        }
                        let nodes = (0..n).map(|_| Hash::decode(input)).collect::<Result<Vec<_>, _>>()?;
                        let tree = Frontier::from_parts(count, &nodes)
                            .ok_or(DecodeError::InvalidTag { what: "identity's output tree", tag: 2 })?;
                        DigestState::Identity(tree)
                    }
                    tag => return Err(DecodeError::InvalidTag { what: "a precompile's input state", tag }),
                };
                Partial::Digest { done, state }
            }
            tag => return Err(DecodeError::InvalidTag { what: "partial instruction", tag }),
        })
    }
}

impl Decode for MachineState {
    fn decode(input: &mut &[u8]) -> Result<Self, DecodeError> {
        Ok(MachineState {
            index: u64::decode(input)?,
            pc: u64::decode(input)?,
            opcode: u8::decode(input)?,
            depth: u64::decode(input)?,
            is_static: bool::decode(input)?,
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
            partial: Partial::decode(input)?,
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
                encode_data(&i.calldata, out);
            }
        }
        match &self.journal {
            None => 0u8.encode_to(out),
            Some(j) => {
                1u8.encode_to(out);
                encode_journal(j, out);
            }
        }
        match &self.return_data {
            None => 0u8.encode_to(out),
            Some(d) => {
                1u8.encode_to(out);
                encode_data(d, out);
            }
        }
        self.checkpoint.map(|h| h.0).encode_to(out);
        match &self.block_hash {
            None => 0u8.encode_to(out),
            Some((n, h)) => {
                1u8.encode_to(out);
                n.encode_to(out);
                h.0.encode_to(out);
            }
        }
        match &self.caller {
            None => 0u8.encode_to(out),
            Some(c) => {
                1u8.encode_to(out);
                c.record.state.encode_to(out);
                c.record.ret_offset.encode_to(out);
                c.record.ret_len.encode_to(out);
                c.record.create.encode_to(out);
                encode_words(&c.memory, out);
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
                calldata: decode_data(input)?,
            }),
            tag => return Err(DecodeError::InvalidTag { what: "step input", tag }),
        };
        let journal = match u8::decode(input)? {
            0 => None,
            1 => Some(decode_journal(input)?),
            tag => return Err(DecodeError::InvalidTag { what: "step journal", tag }),
        };
        let return_data = match u8::decode(input)? {
            0 => None,
            1 => Some(decode_data(input)?),
            tag => return Err(DecodeError::InvalidTag { what: "step return data", tag }),
        };
        let checkpoint = Option::<[u8; 32]>::decode(input)?.map(Hash);
        let block_hash = match u8::decode(input)? {
            0 => None,
            1 => Some((u64::decode(input)?, B256::from(<[u8; 32]>::decode(input)?))),
            tag => return Err(DecodeError::InvalidTag { what: "step block hash", tag }),
        };
        let caller = match u8::decode(input)? {
            0 => None,
            1 => Some(CallerPart {
                record: CallerRecord {
                    state: MachineState::decode(input)?,
                    ret_offset: u64::decode(input)?,
                    ret_len: u64::decode(input)?,
                    create: bool::decode(input)?,
                },
                memory: memory_words(input)?,
            }),
            tag => return Err(DecodeError::InvalidTag { what: "step caller", tag }),
        };
        Ok(InstructionStep {
            state,
            code,
            top,
            below,
            memory,
            input: input_part,
            journal,
            return_data,
            caller,
            checkpoint,
            block_hash,
        })
    }
}

/// Longest journal entry or state value a step carries (an account's).
const MAX_ENTRY: usize = 128;
/// Most siblings on a sparse Merkle path (its key's bits).
const MAX_SIBLINGS: usize = 256;

fn encode_journal_key(key: &JournalKey, out: &mut Vec<u8>) {
    let bytes = key.to_bytes();
    out.extend_from_slice(&bytes);
}

fn decode_journal_key(input: &mut &[u8]) -> Result<JournalKey, DecodeError> {
    let tag = u8::decode(input)?;
    let address = Address::from(<[u8; 20]>::decode(input)?);
    Ok(match tag {
        1 => JournalKey::Account(address),
        2 => JournalKey::Slot(address, word(input)?),
        3 => JournalKey::Transient(address, word(input)?),
        tag => return Err(DecodeError::InvalidTag { what: "journal key", tag }),
    })
}

fn encode_state_key(key: &StateKey, out: &mut Vec<u8>) {
    out.extend_from_slice(&key.to_bytes());
}

fn decode_state_key(input: &mut &[u8]) -> Result<StateKey, DecodeError> {
    Ok(match u8::decode(input)? {
        1 => StateKey::Account(Address::from(<[u8; 20]>::decode(input)?)),
        2 => StateKey::Storage(Address::from(<[u8; 20]>::decode(input)?), word(input)?),
        3 => StateKey::Code(B256::from(<[u8; 32]>::decode(input)?)),
        tag => return Err(DecodeError::InvalidTag { what: "state key", tag }),
    })
}

fn encode_value(value: &Option<Vec<u8>>, out: &mut Vec<u8>) {
    match value {
        None => 0u8.encode_to(out),
        Some(v) => {
            1u8.encode_to(out);
            v.encode_to(out);
        }
    }
}

fn decode_value(input: &mut &[u8]) -> Result<Option<Vec<u8>>, DecodeError> {
    match u8::decode(input)? {
        0 => Ok(None),
        1 => Ok(Some(bounded_bytes(input, "entry", MAX_ENTRY)?)),
        tag => Err(DecodeError::InvalidTag { what: "entry", tag }),
    }
}

fn encode_leaf(leaf: &SmtLeaf, out: &mut Vec<u8>) {
    leaf.key_hash.encode_to(out);
    leaf.value_hash.encode_to(out);
}

fn decode_leaf(input: &mut &[u8]) -> Result<SmtLeaf, DecodeError> {
    Ok(SmtLeaf { key_hash: <[u8; 32]>::decode(input)?, value_hash: <[u8; 32]>::decode(input)? })
}

fn encode_proof(proof: &SmtProof, out: &mut Vec<u8>) {
    match &proof.leaf {
        None => 0u8.encode_to(out),
        Some(l) => {
            1u8.encode_to(out);
            encode_leaf(l, out);
        }
    }
    (proof.siblings.len() as u32).encode_to(out);
    for s in &proof.siblings {
        match s {
            SmtSibling::Null => 0u8.encode_to(out),
            SmtSibling::Internal { left, right } => {
                1u8.encode_to(out);
                left.encode_to(out);
                right.encode_to(out);
            }
            SmtSibling::Leaf(l) => {
                2u8.encode_to(out);
                encode_leaf(l, out);
            }
        }
    }
}

fn decode_proof(input: &mut &[u8]) -> Result<SmtProof, DecodeError> {
    let leaf = match u8::decode(input)? {
        0 => None,
        1 => Some(decode_leaf(input)?),
        tag => return Err(DecodeError::InvalidTag { what: "proof leaf", tag }),
    };
    let n = bounded_len(input, "proof siblings", MAX_SIBLINGS)?;
    let mut siblings = Vec::with_capacity(n);
    for _ in 0..n {
        siblings.push(match u8::decode(input)? {
            0 => SmtSibling::Null,
            1 => SmtSibling::Internal { left: <[u8; 32]>::decode(input)?, right: <[u8; 32]>::decode(input)? },
            2 => SmtSibling::Leaf(decode_leaf(input)?),
            tag => return Err(DecodeError::InvalidTag { what: "proof sibling", tag }),
        });
    }
    Ok(SmtProof { leaf, siblings })
}

fn encode_journal(j: &StepJournal, out: &mut Vec<u8>) {
    j.root.entries.encode_to(out);
    j.root.logs.encode_to(out);
    j.root.logs_count.encode_to(out);
    j.root.messages.encode_to(out);
    encode_list_of(&j.entries, out, encode_journal_proof);
    encode_list_of(&j.pre, out, encode_state_proof);
    encode_list_of(&j.codes, out, |c, out| {
        (c.len() as u32).encode_to(out);
        out.extend_from_slice(c);
    });
}

fn decode_journal(input: &mut &[u8]) -> Result<StepJournal, DecodeError> {
    let root = JournalRoot {
        entries: <[u8; 32]>::decode(input)?,
        logs: Hash::decode(input)?,
        logs_count: u64::decode(input)?,
        messages: Hash::decode(input)?,
    };
    let entries = decode_list_of(input, "journal entries", MAX_STEP_ENTRIES, decode_journal_proof)?;
    let pre = decode_list_of(input, "state proofs", MAX_STEP_ENTRIES, decode_state_proof)?;
    let codes = decode_list_of(input, "codes", 2, |input| bounded_bytes(input, "code", MAX_STEP_CODE))?;
    Ok(StepJournal { root, entries, pre, codes })
}

fn encode_journal_proof(e: &JournalProof, out: &mut Vec<u8>) {
    encode_journal_key(&e.key, out);
    encode_value(&e.value, out);
    encode_proof(&e.proof, out);
}

fn decode_journal_proof(input: &mut &[u8]) -> Result<JournalProof, DecodeError> {
    Ok(JournalProof {
        key: decode_journal_key(input)?,
        value: decode_value(input)?,
        proof: decode_proof(input)?,
    })
}

fn encode_state_proof(p: &StateProof, out: &mut Vec<u8>) {
    encode_state_key(&p.key, out);
    encode_value(&p.value, out);
    encode_proof(&p.proof, out);
}

fn decode_state_proof(input: &mut &[u8]) -> Result<StateProof, DecodeError> {
    Ok(StateProof { key: decode_state_key(input)?, value: decode_value(input)?, proof: decode_proof(input)? })
}

fn encode_list_of<T>(items: &[T], out: &mut Vec<u8>, f: fn(&T, &mut Vec<u8>)) {
    (items.len() as u32).encode_to(out);
    for i in items {
        f(i, out);
    }
}

fn decode_list_of<T>(
    input: &mut &[u8],
    what: &'static str,
    limit: usize,
    f: fn(&mut &[u8]) -> Result<T, DecodeError>,
) -> Result<Vec<T>, DecodeError> {
    let n = bounded_len(input, what, limit)?;
    (0..n).map(|_| f(input)).collect()
}

impl Encode for EndState {
    fn encode_to(&self, out: &mut Vec<u8>) {
        self.result.encode_to(out);
        self.gas_remaining.encode_to(out);
        (self.gas_refunded as u64).encode_to(out);
        self.output.encode_to(out);
        self.journal.encode_to(out);
    }
}

impl Decode for EndState {
    fn decode(input: &mut &[u8]) -> Result<Self, DecodeError> {
        Ok(EndState {
            result: u8::decode(input)?,
            gas_remaining: u64::decode(input)?,
            gas_refunded: u64::decode(input)? as i64,
            output: Hash::decode(input)?,
            journal: Hash::decode(input)?,
        })
    }
}

impl Encode for PrologueStep {
    fn encode_to(&self, out: &mut Vec<u8>) {
        encode_list_of(&self.pre, out, encode_state_proof);
        (self.codes.len() as u32).encode_to(out);
        for c in &self.codes {
            c.encode_to(out);
        }
    }
}

impl Decode for PrologueStep {
    fn decode(input: &mut &[u8]) -> Result<Self, DecodeError> {
        let pre = decode_list_of(input, "prologue proofs", MAX_PROLOGUE_PROOFS, decode_state_proof)?;
        let n = bounded_len(input, "prologue codes", MAX_PROLOGUE_CODES)?;
        let codes = (0..n).map(|_| bounded_bytes(input, "code", MAX_STEP_CODE)).collect::<Result<_, _>>()?;
        Ok(PrologueStep { pre, codes })
    }
}

impl Encode for EpilogueStep {
    fn encode_to(&self, out: &mut Vec<u8>) {
        self.end.encode_to(out);
        self.journal.entries.encode_to(out);
        self.journal.logs.encode_to(out);
        self.journal.logs_count.encode_to(out);
        self.journal.messages.encode_to(out);
        encode_list_of(&self.entries, out, encode_journal_proof);
        encode_list_of(&self.pre, out, encode_state_proof);
        self.trace.encode_to(out);
        encode_list_of(&self.messages, out, |id, out| id.encode_to(out));
    }
}

impl Decode for EpilogueStep {
    fn decode(input: &mut &[u8]) -> Result<Self, DecodeError> {
        Ok(EpilogueStep {
            end: EndState::decode(input)?,
            journal: JournalRoot {
                entries: <[u8; 32]>::decode(input)?,
                logs: Hash::decode(input)?,
                logs_count: u64::decode(input)?,
                messages: Hash::decode(input)?,
            },
            // a delivery's: the bridge, the beneficiary, two counters, and
            // the bridge before the item
            entries: decode_list_of(input, "epilogue entries", 4, decode_journal_proof)?,
            pre: decode_list_of(input, "epilogue proofs", 5, decode_state_proof)?,
            trace: bridge::TraceState::decode(input)?,
            messages: decode_list_of(input, "messages", super::settle::MAX_ITEM_MESSAGES, Hash::decode)?,
        })
    }
}

impl Encode for CommitState {
    fn encode_to(&self, out: &mut Vec<u8>) {
        self.entries.encode_to(out);
        self.trace.encode_to(out);
    }
}

impl Decode for CommitState {
    fn decode(input: &mut &[u8]) -> Result<Self, DecodeError> {
        Ok(CommitState {
            entries: <[u8; 32]>::decode(input)?,
            trace: bridge::TraceCommitment::decode(input)?,
        })
    }
}

impl Encode for CommitStep {
    fn encode_to(&self, out: &mut Vec<u8>) {
        self.state.encode_to(out);
        encode_journal_proof(&self.entry, out);
        encode_list_of(self.account.as_slice(), out, encode_journal_proof);
        encode_list_of(self.current.as_slice(), out, encode_state_proof);
        encode_list_of(self.code.as_slice(), out, |c, out| {
            (c.code.len() as u32).encode_to(out);
            out.extend_from_slice(&c.code);
            u8::from(c.present).encode_to(out);
            encode_proof(&c.proof, out);
        });
    }
}

fn decode_code_write(input: &mut &[u8]) -> Result<CodeWrite, DecodeError> {
    Ok(CodeWrite {
        code: bounded_bytes(input, "created code", MAX_CODE as usize)?,
        present: match u8::decode(input)? {
            0 => false,
            1 => true,
            tag => return Err(DecodeError::InvalidTag { what: "code present", tag }),
        },
        proof: decode_proof(input)?,
    })
}

impl Decode for CommitStep {
    fn decode(input: &mut &[u8]) -> Result<Self, DecodeError> {
        Ok(CommitStep {
            state: CommitState::decode(input)?,
            entry: decode_journal_proof(input)?,
            account: decode_list_of(input, "slot's account", 1, decode_journal_proof)?.pop(),
            current: decode_list_of(input, "state value", 1, decode_state_proof)?.pop(),
            code: decode_list_of(input, "created code", 1, decode_code_write)?.pop(),
        })
    }
}

impl Encode for ItemStep {
    fn encode_to(&self, out: &mut Vec<u8>) {
        match self {
            ItemStep::Prologue(p) => {
                0u8.encode_to(out);
                p.encode_to(out);
            }
            ItemStep::Instruction(s) => {
                1u8.encode_to(out);
                s.encode_to(out);
            }
            ItemStep::Epilogue(e) => {
                2u8.encode_to(out);
                e.encode_to(out);
            }
            ItemStep::Commit(c) => {
                3u8.encode_to(out);
                c.encode_to(out);
            }
            ItemStep::Done(c) => {
                4u8.encode_to(out);
                c.encode_to(out);
            }
        }
    }
}

impl Decode for ItemStep {
    fn decode(input: &mut &[u8]) -> Result<Self, DecodeError> {
        Ok(match u8::decode(input)? {
            0 => ItemStep::Prologue(PrologueStep::decode(input)?),
            1 => ItemStep::Instruction(Box::new(InstructionStep::decode(input)?)),
            2 => ItemStep::Epilogue(Box::new(EpilogueStep::decode(input)?)),
            3 => ItemStep::Commit(Box::new(CommitStep::decode(input)?)),
            4 => ItemStep::Done(bridge::TraceCommitment::decode(input)?),
            tag => return Err(DecodeError::InvalidTag { what: "item step", tag }),
        })
    }
}
