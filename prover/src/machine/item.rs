//! A transaction's whole level-2 trace: its start `s_0` (derived from
//! `c_{i-1}` and the item), the prologue's step to its first instruction
//! (or to its frame's end when it runs none), its instructions, its
//! frame's end, the epilogue and the journal's commit into the state root
//! (`settle.rs`), ending on `c_i`; and the check that every step of it is
//! one the verifier takes.

use std::collections::BTreeMap;

use bridge::{TraceCommitment, TraceState};

use super::host::StepDb;
use super::journal::JournalTree;
use super::settle::{
    self, CommitState, CommitStep, EpilogueStep, verify_commit, verify_done, verify_epilogue,
};
use super::trace::{Tracer, replay};
use super::*;
use crate::state::{PartialTree, StateKey, StateProof};

/// `s_0` of an item's level-2 trace: its start, from `c_{i-1}` and the
/// item's hash (both fixed by level 1).
pub fn start_state(pre: &TraceCommitment, item: &Hash) -> Hash {
    bridge::item_start(&pre.hash(), item)
}

/// The prologue's step: what a transaction reads before its first
/// instruction (or its frame's end) — the sender, the target and its
/// code — proven against the state root before it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PrologueStep {
    /// The accounts and slots read, with their proofs.
    pub pre: Vec<StateProof>,
    /// The codes read.
    pub codes: Vec<Vec<u8>>,
}

/// Most proven values a prologue reads (the sender, the target, a
/// delegate, a created address, the bridge's channel slot).
pub const MAX_PROLOGUE_PROOFS: usize = 5;
/// Most codes a prologue reads (the sender's delegation, the target's,
/// its delegate's).
pub const MAX_PROLOGUE_CODES: usize = 3;

/// Whether the prologue is a step yet: not for an EIP-7702 authorization
/// list (its authorities are more than the prologue's step carries).
fn prologue_covered(tx: &TxEnv) -> bool {
    use revm::context_interface::Transaction;
    tx.authorization_list_len() == 0
}

/// The prologue's step of `tx` over `base` (the state before it); for a
/// call message, with its channel's inbound counter.
pub fn prologue_step<R: ProvableState + Clone, I: TraceItem + ?Sized>(
    base: R,
    params: &BlockParams,
    tx: &I,
) -> Result<PrologueStep> {
    let (t, _) = replay(base.clone(), params, tx.run_env(), tx.as_message(), Tracer::first());
    let Some((_, reads)) = t.first else {
        return Err(Error::Execution("the transaction never starts".into()));
    };
    let mut pre = Vec::new();
    let mut codes = Vec::new();
    let inbound =
        tx.as_message().map(|m| StateKey::Storage(bridge::BRIDGE_ADDRESS, crate::inbound_slot(m.src)));
    for key in reads.into_iter().chain(inbound) {
        match key {
            StateKey::Code(hash) => codes.push(base.code_by_hash_ref(hash)?.original_bytes().to_vec()),
            key if pre.iter().any(|p: &StateProof| p.key == key) => {}
            key => pre.push(base.prove(key)?),
        }
    }
    Ok(PrologueStep { pre, codes })
}

/// Runs the transaction's prologue over the values `step` carries: the
/// hash of its first state after `s_0`.
pub fn verify_prologue(step: &PrologueStep, env: &StepEnv) -> InstructionVerdict {
    if !prologue_covered(&env.tx) {
        return InstructionVerdict::Unsupported(0);
    }
    if step.pre.len() > MAX_PROLOGUE_PROOFS || step.codes.len() > MAX_PROLOGUE_CODES {
        return InstructionVerdict::Rejected("more than a prologue reads".into());
    }
    let db = match StepDb::from_proofs(&step.pre, &step.codes, &env.pre.state_root) {
        Ok(db) => db,
        Err(reason) => return InstructionVerdict::Rejected(reason),
    };
    // an item the block's gas left cannot take is not in a valid block
    // (level 1 refuses it the same way)
    if env.pre.gas_used.saturating_add(env.tx.gas_limit) > env.params.gas_limit {
        return InstructionVerdict::Rejected("the item's gas limit exceeds the block's remaining gas".into());
    }
    // a call message is delivered only as the next of its channel
    if let Some(m) = &env.message {
        if m.kind != bridge::MessageKind::Call {
            return InstructionVerdict::Unsupported(0);
        }
        if let Err(why) = crate::exec::message_fits(m, &env.params) {
            return InstructionVerdict::Rejected(why);
        }
        let inbound = StateKey::Storage(bridge::BRIDGE_ADDRESS, crate::inbound_slot(m.src));
        let counter = step
            .pre
            .iter()
            .find(|p| p.key == inbound)
            .map(|p| p.value.as_deref().map(crate::state::decode_slot));
        match counter {
            Some(None) if m.nonce == 0 => {}
            Some(Some(Ok(n))) if n == U256::from(m.nonce) => {}
            Some(_) => return InstructionVerdict::Rejected("not the channel's next message".into()),
            None => {
                return InstructionVerdict::Rejected(
                    "a message's prologue carries its channel's counter".into(),
                );
            }
        }
    }
    // a read of anything the step lacks fails the replay before its first
    // state: no first state, a refused step
    let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        replay(db, &env.params, env.tx.clone(), env.message.as_ref(), Tracer::first()).0.first
    }));
    match run {
        Ok(Some((first, _))) => InstructionVerdict::Next(first),
        Ok(None) => InstructionVerdict::Rejected("the step lacks what the prologue reads".into()),
        Err(_) => InstructionVerdict::Rejected("the step's values break the prologue".into()),
    }
}

/// One step of an item's level-2 trace `T_0 … T_L`: the prologue's from
/// `T_0 = s_0`, an instruction's, the epilogue's from the frame's end, a
/// commit of one journal entry, or a step from `c_i` (which stays). Each
/// kind proves the state it starts from by a hash of its own domain, so the
/// referee needs no index to tell which applies.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ItemStep {
    /// From the item's start to its first instruction (or frame's end).
    Prologue(PrologueStep),
    /// One instruction.
    Instruction(Box<InstructionStep>),
    /// From the frame's end to the settled journal and receipt.
    Epilogue(Box<EpilogueStep>),
    /// One journal entry into the state.
    Commit(Box<CommitStep>),
    /// From `c_i`.
    Done(TraceCommitment),
}

/// Re-executes one step of an item's trace from the agreed `T_j`: `T_{j+1}`.
pub fn verify_item_step(step: &ItemStep, agreed: &Hash, env: &StepEnv) -> InstructionVerdict {
    match step {
        ItemStep::Prologue(p) if start_state(&env.pre, &env.item) == *agreed => verify_prologue(p, env),
        ItemStep::Prologue(_) => InstructionVerdict::Rejected("not the item's start agreed".into()),
        ItemStep::Instruction(s) => verify_instruction(s, agreed, env),
        ItemStep::Epilogue(e) => verify_epilogue(e, agreed, env),
        ItemStep::Commit(c) => verify_commit(c, agreed),
        ItemStep::Done(c) => verify_done(c, agreed),
    }
}

/// An item's level-2 trace as a round asks for it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ItemTrace {
    /// Its last index `L`: `T_L = c_i`.
    pub last: u64,
    /// Instructions it runs (`N`): `T_1 … T_N` are their states, `T_{N+1}`
    /// the frame's end, `T_{N+2}` the settled state, then one state per
    /// journal entry committed.
    pub instructions: u64,
    /// `T_j` at each requested index, in increasing order (`c_i`'s hash
    /// past `L`).
    pub states: Vec<Hash>,
    /// `c_i`.
    pub end: TraceCommitment,
}

/// `T_j` of `tx`'s trace over `base` (in block `params`, after the trace
/// state `pre`) at each index of `at` (any order): the prover replays the
/// item once and hashes only those.
pub fn item_trace<R: ProvableState + Clone, I: TraceItem + ?Sized>(
    base: R,
    params: &BlockParams,
    tx: &I,
    pre: &TraceState,
    at: &[u64],
) -> Result<ItemTrace> {
    let mut at = at.to_vec();
    at.sort_unstable();
    at.dedup();
    let env = StepEnv::new(params.clone(), tx, pre.commitment(base.root()?));
    let wanted: Vec<u64> = at.iter().filter(|j| **j >= 1).map(|j| j - 1).collect();
    let run = ItemRun::new(&base, &env, pre, &wanted)?;
    let n = run.instructions;
    let mut states = Vec::with_capacity(at.len());
    let mut instructions = run.states.iter();
    let mut commits = Committer::new(&base, &run.settled, &run.entries, &run.codes)?;
    for j in at {
        let h = match j {
            0 => start_state(&env.pre, &env.item),
            j if j <= n => {
                instructions.next().expect("the replay hashed every index asked below N").commitment()
            }
            j if j == n + 1 => run.end.commitment(),
            j => {
                commits.advance_to(j - (n + 2))?;
                commits.state().commitment()
            }
        };
        states.push(h);
    }
    commits.advance_to(u64::MAX)?;
    Ok(ItemTrace {
        last: n + 2 + run.entries.len() as u64,
        instructions: n,
        states,
        end: commits.state().trace,
    })
}

/// The first step of `tx`'s trace (over `base`, in block `params`) the
/// verifier does not cover yet, as its index `j` of `T_j` and opcode (`0`
/// for the prologue or epilogue): `None` if every step is covered, so an
/// honest defender can descend into it knowing every step it may have to
/// show is a step.
pub fn item_coverage<R: ProvableState + Clone, I: TraceItem + ?Sized>(
    base: R,
    params: &BlockParams,
    tx: &I,
) -> Result<Option<(u64, u8)>> {
    // the prologue: no authorization list; a call message that fits (a
    // refund runs no EVM: its whole-item step is tiny)
    let env = tx.run_env();
    let message = tx.as_message();
    let deliverable = message
        .is_none_or(|m| m.kind == bridge::MessageKind::Call && crate::exec::message_fits(m, params).is_ok());
    if !prologue_covered(&env) || !deliverable {
        return Ok(Some((0, 0)));
    }
    let tracer = Tracer::coverage();
    // a run revm refuses outright (a message whose gas is below the
    // EIP-7623 floor: refunded at level 1 with no gas used) has no trace:
    // its whole-item step is tiny, level 1's to decide
    let (t, ran) = replay(base, params, env, message, tracer);
    if ran.is_err() {
        return Ok(Some((0, 0)));
    }
    Ok(t.uncovered.map(|(j, op)| (j + 1, op)))
}

/// The step from `T_j` of `tx`'s trace (see [`item_trace`]).
pub fn item_step<R: ProvableState + Clone, I: TraceItem + ?Sized>(
    base: R,
    params: &BlockParams,
    tx: &I,
    pre: &TraceState,
    j: u64,
) -> Result<ItemStep> {
    if j == 0 {
        return prologue_step(base, params, tx).map(ItemStep::Prologue);
    }
    let env = StepEnv::new(params.clone(), tx, pre.commitment(base.root()?));
    let run = ItemRun::new(&base, &env, pre, &[])?;
    let n = run.instructions;
    if j <= n {
        return super::instruction_step(base, params, tx, j - 1).map(|s| ItemStep::Instruction(Box::new(s)));
    }
    if j == n + 1 {
        return Ok(ItemStep::Epilogue(Box::new(run.epilogue)));
    }
    let mut commits = Committer::new(&base, &run.settled, &run.entries, &run.codes)?;
    let m = j - (n + 2);
    commits.advance_to(m)?;
    match commits.step()? {
        Some(step) => Ok(ItemStep::Commit(Box::new(step))),
        None => Ok(ItemStep::Done(commits.state().trace)),
    }
}

/// One replay of an item for its prover: its instructions, the states
/// asked for, its frame's end, the epilogue's step and the journal it
/// settles to.
struct ItemRun {
    instructions: u64,
    states: Vec<MachineState>,
    end: EndState,
    epilogue: EpilogueStep,
    settled: CommitState,
    /// The settled journal's entries, by their order in the map.
    entries: Vec<(JournalKey, Vec<u8>)>,
    /// The codes of the accounts the item created.
    codes: BTreeMap<B256, Vec<u8>>,
}

impl ItemRun {
    fn new<R: ProvableState + Clone>(
        base: &R,
        env: &StepEnv,
        pre: &TraceState,
        wanted: &[u64],
    ) -> Result<ItemRun> {
        let unsupported = |what: &str| Error::Execution(format!("{what} is not a level-2 trace yet"));
        let signed = env.tx.clone();
        let (mut t, ran) = replay(
            base.clone(),
            &env.params,
            signed,
            env.message.as_ref(),
            Tracer::new(wanted, None).keeping_end_journal(),
        );
        ran?;
        let (Some(end), Some((entries, logs))) = (t.end, t.end_journal) else {
            return Err(Error::Execution("the transaction's frame never ended".into()));
        };
        let tree = JournalTree::of(&entries);
        let journal = JournalRoot { entries: tree.root(), ..logs };
        let mut proofs = Vec::new();
        let mut pre_values = Vec::new();
        for key in settle::epilogue_keys(env) {
            let value = entries.get(&key).cloned();
            if let (None, Some(k)) = (&value, key.pre_key()) {
                pre_values.push(base.prove(k)?);
            }
            proofs.push(JournalProof { key, value, proof: tree.prove(&key) });
        }
        if env.message.is_some() {
            // a delivery restores the bridge's account from before the item
            pre_values.push(base.prove(StateKey::Account(bridge::BRIDGE_ADDRESS))?);
        }
        let epilogue = EpilogueStep {
            end: end.clone(),
            journal,
            entries: proofs,
            pre: pre_values,
            trace: pre.clone(),
            messages: std::mem::take(&mut t.end_messages),
        };
        let settled = settle::settle(&epilogue, &end.commitment(), env)
            .map_err(|e| Error::Execution(format!("the epilogue: {e}")))?
            .ok_or_else(|| unsupported("this transaction's epilogue"))?;
        let mut entries = entries;
        for (key, value) in settled.written {
            match value {
                Some(v) => entries.insert(key, v),
                None => entries.remove(&key),
            };
        }
        let mut entries: Vec<_> = entries.into_iter().collect();
        entries.sort_by_key(|(k, _)| k.key_hash());
        Ok(ItemRun {
            instructions: t.next,
            states: t.states,
            end,
            epilogue,
            settled: settled.state,
            entries,
            codes: t.end_codes,
        })
    }
}

/// The journal's commit into the state, entry by entry, for a prover: the
/// map and the state opened at every key it writes, hashed only when a
/// state or step is asked for.
struct Committer<'a> {
    entries: &'a [(JournalKey, Vec<u8>)],
    /// Entries committed so far.
    done: usize,
    map: JournalTree,
    /// The account entries still in the map.
    accounts: BTreeMap<Address, Vec<u8>>,
    state: PartialTree,
    values: BTreeMap<StateKey, Option<Vec<u8>>>,
    trace: TraceCommitment,
    /// The codes of the accounts the item created, by hash.
    codes: &'a BTreeMap<B256, Vec<u8>>,
}

impl<'a> Committer<'a> {
    fn new<R: ProvableState>(
        base: &R,
        settled: &CommitState,
        entries: &'a [(JournalKey, Vec<u8>)],
        codes: &'a BTreeMap<B256, Vec<u8>>,
    ) -> Result<Committer<'a>> {
        let map = JournalTree::of(&entries.iter().cloned().collect());
        let accounts = entries
            .iter()
            .filter_map(|(k, v)| match k {
                JournalKey::Account(a) => Some((*a, v.clone())),
                _ => None,
            })
            .collect();
        let proofs = entries
            .iter()
            .filter_map(|(k, _)| k.pre_key())
            .chain(codes.keys().map(|h| StateKey::Code(*h)))
            .map(|k| base.prove(k))
            .collect::<Result<Vec<_>>>()?;
        let hashes: Vec<[u8; 32]> = proofs.iter().map(|p| p.key.key_hash().0).collect();
        let state = PartialTree::from_proofs(hashes.iter().zip(proofs.iter().map(|p| &p.proof)))?;
        let values = proofs.into_iter().map(|p| (p.key, p.value)).collect();
        Ok(Committer { entries, done: 0, map, accounts, state, values, trace: settled.trace, codes })
    }

    /// The write of the next entry.
    fn write(&self) -> Result<Option<settle::Write>> {
        let Some((key, value)) = self.entries.get(self.done) else { return Ok(None) };
        let account = match key {
            JournalKey::Slot(a, _) => self.accounts.get(a).map(Vec::as_slice),
            _ => None,
        };
        settle::commit_write(key, value, account).map(Some).map_err(Error::Execution)
    }

    /// Commits entries until `m` are (or all are).
    fn advance_to(&mut self, m: u64) -> Result<()> {
        while (self.done as u64) < m {
            let Some(write) = self.write()? else { return Ok(()) };
            let (key, _) = &self.entries[self.done];
            match write {
                settle::Write::Nothing => {}
                settle::Write::Set(k, v) => {
                    self.state.update(&k.key_hash().0, v.as_deref())?;
                    self.values.insert(k, v);
                }
                settle::Write::SetWithCode(k, v, hash) => {
                    self.state.update(&k.key_hash().0, v.as_deref())?;
                    self.values.insert(k, v);
                    let code = self.code(&hash)?.to_vec();
                    let key = StateKey::Code(hash);
                    self.state.update(&key.key_hash().0, Some(&code))?;
                    self.values.insert(key, Some(code));
                }
            }
            self.map.remove(key);
            if let JournalKey::Account(a) = key {
                self.accounts.remove(a);
            }
            self.done += 1;
        }
        Ok(())
    }

    /// The machine after the entries committed so far.
    fn state(&self) -> CommitState {
        CommitState {
            entries: self.map.root(),
            trace: TraceCommitment { state_root: Hash(self.state.hash()), ..self.trace },
        }
    }

    /// The step committing the next entry (`None` once all are).
    fn step(&self) -> Result<Option<CommitStep>> {
        let Some(write) = self.write()? else { return Ok(None) };
        let (key, value) = &self.entries[self.done];
        let account = match key {
            JournalKey::Slot(a, _) => {
                let k = JournalKey::Account(*a);
                Some(JournalProof { key: k, value: self.accounts.get(a).cloned(), proof: self.map.prove(&k) })
            }
            _ => None,
        };
        let now = |k: StateKey| -> Result<StateProof> {
            Ok(StateProof {
                key: k,
                value: self.values.get(&k).cloned().flatten(),
                proof: self.state.prove(&k.key_hash().0).ok_or_else(|| Error::MissingPath(k.to_string()))?,
            })
        };
        let (current, code) = match write {
            settle::Write::Set(k, _) => (Some(now(k)?), None),
            settle::Write::SetWithCode(k, _, hash) => {
                let stored = now(StateKey::Code(hash))?;
                let code = settle::CodeWrite {
                    code: self.code(&hash)?.to_vec(),
                    present: stored.value.is_some(),
                    proof: stored.proof,
                };
                (Some(now(k)?), Some(code))
            }
            settle::Write::Nothing => (None, None),
        };
        Ok(Some(CommitStep {
            state: self.state(),
            entry: JournalProof { key: *key, value: Some(value.clone()), proof: self.map.prove(key) },
            account,
            current,
            code,
        }))
    }

    /// A code an account was created with in the item.
    fn code(&self, hash: &B256) -> Result<&[u8]> {
        self.codes
            .get(hash)
            .map(Vec::as_slice)
            .ok_or_else(|| Error::MissingPath(format!("created code {hash}")))
    }
}
