//! The item's last steps: the epilogue (the refund, the fees, the receipt)
//! and the journal's commit into the state, one entry a step, ending on
//! `c_i` itself.
//!
//! After the epilogue the machine is a [`CommitState`]: the journal's map
//! still to commit and the trace commitment as it stands (the state root
//! with the entries committed so far, the outbox, receipts and gas after the
//! item). Each commit step takes the map's least entry (its proof shows
//! nothing to its left, so the order is the map's and the step unique),
//! writes what [`commit_write`] says into the state root, and removes it.
//! A map's key puts every slot before every account ([`JournalKey::key_hash`]),
//! so a slot's account entry, which decides whether it is written, is still
//! there. With the map empty the state's hash is `c_i`'s, and a step from
//! `c_i` leaves it as it is: a trace may be claimed longer than it runs.

use alloy_primitives::Bytes;
use bridge::{TraceCommitment, TraceState};
use revm::MainBuilder;
use revm::context::result::EVMError;
use revm::handler::{EthFrame, FrameResult, Handler, MainnetHandler};
use revm::interpreter::{CallOutcome, Gas, InstructionResult, InterpreterResult};
use revm::primitives::KECCAK_EMPTY;

use super::host::{Opened, StepHost, host_for, open_entries};
use super::journal;
use super::step::{Checked, JournalProof};
use super::*;
use crate::receipt::{ReceiptParts, receipt_hash};
use crate::state::{AccountState, PLACEHOLDER, PartialTree, SmtProof, StateKey, StateProof, encode_slot};

/// The machine while its journal is committed into the state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CommitState {
    /// Root of the journal's map still to commit.
    pub entries: [u8; 32],
    /// The trace commitment: the state root with the entries committed so
    /// far, the outbox, receipts and gas after the item.
    pub trace: TraceCommitment,
}

impl CommitState {
    /// Its hash in the item's trace: `c_i`'s own once nothing is left.
    pub fn commitment(&self) -> Hash {
        if self.entries == PLACEHOLDER {
            self.trace.hash()
        } else {
            hash_domain(b"optishard.commit", &[&self.entries, &self.trace.hash().0])
        }
    }
}

/// The epilogue's step: the frame's end in parts, the sender's and the
/// beneficiary's journal entries (each absent one's value at the item's
/// start proven against `c_{i-1}`'s state root), and `c_{i-1}`'s frontiers,
/// which the receipt extends.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EpilogueStep {
    /// The machine at the frame's end.
    pub end: EndState,
    /// Its journal's parts.
    pub journal: JournalRoot,
    /// The sender's entry, then the beneficiary's (one if they are the same).
    pub entries: Vec<JournalProof>,
    /// Each absent entry's value at the item's start, in order.
    pub pre: Vec<StateProof>,
    /// The trace before the item, but its state root.
    pub trace: TraceState,
    /// The ids of the messages the item sent (the journal's messages'
    /// chain is theirs), which its receipt names and the outbox takes.
    pub messages: Vec<Hash>,
}

/// Most messages one item sends: each costs at least [`crate::SEND_GAS`]
/// of gas no transaction has more than 2^30 of.
pub(super) const MAX_ITEM_MESSAGES: usize = ((1 << 30) / crate::SEND_GAS) as usize;

/// The entries the epilogue touches: the sender's, then the beneficiary's;
/// for a call message the bridge's (its sender), the beneficiary's, and
/// the bridge's counters of the message's channel: inbound (bumped) and
/// outbound back to its source (a refund's nonce).
pub(super) fn epilogue_keys(env: &StepEnv) -> Vec<JournalKey> {
    let (caller, beneficiary) =
        (JournalKey::Account(env.tx.caller), JournalKey::Account(env.params.beneficiary));
    let mut keys = if caller == beneficiary { vec![caller] } else { vec![caller, beneficiary] };
    if let Some(m) = &env.message {
        keys.push(JournalKey::Slot(bridge::BRIDGE_ADDRESS, crate::inbound_slot(m.src)));
        keys.push(JournalKey::Slot(bridge::BRIDGE_ADDRESS, crate::bridge::channel_slot(m.src)));
    }
    keys
}

/// What the epilogue did: the machine after it and the entries it wrote.
pub(super) struct Settled {
    pub(super) state: CommitState,
    pub(super) written: Opened,
}

/// Runs the epilogue over the values `step` carries: the [`CommitState`]
/// it leaves.
pub fn verify_epilogue(step: &EpilogueStep, agreed: &Hash, env: &StepEnv) -> InstructionVerdict {
    match settle(step, agreed, env) {
        Ok(Some(s)) => InstructionVerdict::Next(s.state.commitment()),
        Ok(None) => InstructionVerdict::Unsupported(0),
        Err(reason) => InstructionVerdict::Rejected(reason),
    }
}

/// The epilogue: revm's own handler settles the frame's gas (the refund
/// and its cap, the EIP-7623 floor), reimburses the sender and pays the
/// beneficiary, over a host holding just their entries; the receipt then
/// extends `c_{i-1}`'s frontiers. `None` for a transaction whose epilogue
/// is not a step (an EIP-7702 authorization list).
pub(super) fn settle(step: &EpilogueStep, agreed: &Hash, env: &StepEnv) -> Checked<Option<Settled>> {
    use revm::context_interface::Transaction;
    if env.tx.authorization_list_len() != 0 {
        return Ok(None);
    }
    let end = &step.end;
    if step.journal.commitment() != end.journal || end.commitment() != *agreed {
        return Err("not the frame's end agreed".into());
    }
    if end.result > END_HALT
        || end.gas_remaining > env.tx.gas_limit
        || end.gas_refunded.unsigned_abs() > env.tx.gas_limit
    {
        return Err("an end no transaction reaches".into());
    }
    if !step.trace.matches(&env.pre) {
        return Err("not the trace before the item".into());
    }
    if step.messages.len() as u64 > env.tx.gas_limit / crate::SEND_GAS
        || journal::extend_messages(Hash::ZERO, &step.messages) != step.journal.messages
    {
        return Err("not the messages the journal sent".into());
    }
    let keys = epilogue_keys(env);
    // a delivery's last proof is the bridge's account before the item
    let (pre, bridge_before) = match &env.message {
        Some(_) => {
            let (last, pre) =
                step.pre.split_last().ok_or("a delivery's epilogue carries the bridge before it")?;
            if last.key != StateKey::Account(bridge::BRIDGE_ADDRESS) {
                return Err("a delivery's epilogue carries the bridge before it".into());
            }
            last.verify(&env.pre.state_root).map_err(|e| format!("state before the item: {e}"))?;
            let before =
                last.value.as_deref().map(AccountState::decode).transpose().map_err(|e| e.to_string())?;
            (
                pre,
                Some(before.unwrap_or(AccountState {
                    nonce: 0,
                    balance: U256::ZERO,
                    code_hash: KECCAK_EMPTY,
                })),
            )
        }
        None => (step.pre.as_slice(), None),
    };
    let (db, opened, mut tree) = open_entries(&step.journal, &step.entries, pre, &[], &keys, env)?;
    let host = host_for(db, &opened, env)?;
    let (gas_used, host) = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run_epilogue(host, end)))
        .unwrap_or_else(|_| Err("the step's values break the epilogue".into()))?;
    if let Some(missing) = host.journaled_state.database.0.missed.borrow().clone() {
        return Err(format!("the step lacks {missing}"));
    }
    let inner = &host.journaled_state.inner;
    if journal::entries_of(inner).keys().any(|k| !keys.contains(k)) {
        return Err("the epilogue touched an entry the step lacks".into());
    }
    let success = end.result == END_OK;
    let mut values: Vec<(JournalKey, Option<Vec<u8>>)> =
        keys.iter().map(|key| (*key, journal::entry_in(inner, key))).collect();
    let mut messages: Vec<Hash> = if success { step.messages.clone() } else { Vec::new() };
    if let (Some(m), Some(before)) = (&env.message, &bridge_before) {
        // a delivery settles as `exec::deliver` does
        let refund = deliver_settlement(&mut values, &host, m, before, success)?;
        messages.extend(refund);
    }
    let mut written = Vec::with_capacity(keys.len());
    for (key, value) in values {
        tree.update(&key.key_hash(), value.as_deref())
            .map_err(|_| "the journal's paths do not open the entries")?;
        written.push((key, value));
    }
    let (logs, logs_count) =
        if success { (step.journal.logs, step.journal.logs_count) } else { (Hash::ZERO, 0) };
    let receipt = receipt_hash(&ReceiptParts {
        tx_hash: env.tx_hash,
        tx_type: if env.message.is_some() { crate::MESSAGE_RECEIPT_TYPE } else { env.tx.tx_type },
        success,
        gas_used,
        // a create transaction that succeeded made the sender's address at
        // its nonce
        contract_address: (success && env.tx.kind.is_create()).then(|| env.tx.caller.create(env.tx.nonce)),
        logs,
        logs_count,
        messages: &messages,
    });
    let mut trace = step.trace.clone();
    trace.push(messages.iter().copied(), &receipt, gas_used);
    let state = CommitState { entries: tree.hash(), trace: trace.commitment(env.pre.state_root) };
    Ok(Some(Settled { state, written }))
}

/// A delivered call's settlement over the epilogue's entries (`values`,
/// by [`epilogue_keys`], as revm's epilogue left them): the bridge's
/// balance and nonce restored as `exec::bridge_after` says, the channel's
/// inbound counter past the message, and when the call failed the refund
/// to its sender on the source, whose id it returns (its channel's
/// counter bumped).
fn deliver_settlement(
    values: &mut [(JournalKey, Option<Vec<u8>>)],
    host: &StepHost,
    m: &bridge::Message,
    before: &AccountState,
    success: bool,
) -> Checked<Option<Hash>> {
    let id = host.journaled_state.inner.transaction_id;
    // a slot's value now: its entry, or its value before the item
    let slot_now = |key: &JournalKey, entry: &Option<Vec<u8>>| -> Checked<(U256, U256)> {
        match (entry, key) {
            (Some(e), _) => {
                let s = journal::slot_of(e, id).ok_or("a malformed slot entry")?;
                Ok((s.original_value, s.present_value))
            }
            (None, JournalKey::Slot(a, k)) => {
                use revm::DatabaseRef;
                let v = host.journaled_state.database.0.storage_ref(*a, *k).map_err(|e| e.to_string())?;
                Ok((v, v))
            }
            _ => Err("not a slot".into()),
        }
    };
    let mut refund = None;
    for (key, value) in values.iter_mut() {
        match *key {
            JournalKey::Account(a) if a == bridge::BRIDGE_ADDRESS => {
                let entry = value.as_deref().ok_or("a delivery's bridge is in its journal")?;
                let mut account = journal::account_of(entry, id).ok_or("a malformed account entry")?;
                (account.info.balance, account.info.nonce) =
                    crate::exec::bridge_after(account.info.balance, before, m, success);
                *value = Some(journal::account_entry(&account.info, account.status));
            }
            JournalKey::Slot(_, k) if k == crate::inbound_slot(m.src) => {
                let (original, _) = slot_now(key, value)?;
                let next = m.nonce.checked_add(1).ok_or("a channel counter past any")?;
                let slot = revm::state::EvmStorageSlot::new_changed(original, U256::from(next), id);
                *value = Some(journal::slot_entry(&slot));
            }
            JournalKey::Slot(_, k) if k == crate::bridge::channel_slot(m.src) && !success => {
                let (original, now) = slot_now(key, value)?;
                let nonce = u64::try_from(now).map_err(|_| "a channel counter past any")?;
                let next = nonce.checked_add(1).ok_or("a channel counter past any")?;
                let slot = revm::state::EvmStorageSlot::new_changed(original, U256::from(next), id);
                *value = Some(journal::slot_entry(&slot));
                refund = Some(m.refund(nonce).id());
            }
            _ => {}
        }
    }
    Ok(refund)
}

/// revm's epilogue of a transaction whose frame ended as `end`: the gas it
/// used, and the host after the sender's reimbursement and the fees.
fn run_epilogue(host: StepHost, end: &EndState) -> Checked<(u64, StepHost)> {
    let mut evm = host.build_mainnet();
    let mut handler = MainnetHandler::<_, EVMError<Error>, EthFrame<EthInterpreter>>::default();
    let fail = |e: EVMError<Error>| format!("the epilogue fails: {e}");
    let init = handler.validate_initial_tx_gas(&mut evm).map_err(fail)?;
    let mut gas = handler.tx_gas(&mut evm, &init);
    let mut frame_gas = Gas::new(end.gas_remaining);
    frame_gas.record_refund(end.gas_refunded);
    let result = match end.result {
        END_OK => InstructionResult::Stop,
        END_REVERT => InstructionResult::Revert,
        _ => InstructionResult::OutOfGas,
    };
    let outcome = CallOutcome::new(InterpreterResult::new(result, Bytes::new(), frame_gas), 0..0);
    let mut frame = FrameResult::Call(outcome);
    handler.last_frame_result(&mut evm, &mut frame, &mut gas).map_err(fail)?;
    let used = handler.post_execution(&mut evm, &mut frame, init, 0).map_err(fail)?;
    Ok((used.tx_gas_used(), evm.ctx))
}

/// What committing one journal entry writes into the state, as
/// `Overlay::commit_item` does for a whole item: a touched account is
/// written (removed if it is empty or self-destructed), a warm slot of a
/// touched account is written with its present value (zero removes it;
/// every slot of a removed account not created in the item is removed),
/// transient storage is dropped. Writing a value the state already holds
/// changes nothing, so an unchanged entry needs no case of its own.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Write {
    /// Nothing.
    Nothing,
    /// `key` becomes `value` (`None` removes it).
    Set(StateKey, Option<Vec<u8>>),
    /// An account created with code: `key` becomes `value`, and the code
    /// with this hash is stored (as `Overlay::commit_item` stores it).
    SetWithCode(StateKey, Option<Vec<u8>>, B256),
}

/// The write of entry `key` (`value`), given its account's entry for a slot.
pub(super) fn commit_write(key: &JournalKey, value: &[u8], account: Option<&[u8]>) -> Checked<Write> {
    let malformed = || format!("a malformed entry {key:?}");
    Ok(match *key {
        JournalKey::Transient(..) => Write::Nothing,
        JournalKey::Account(a) => {
            let acc = journal::account_of(value, Default::default()).ok_or_else(malformed)?;
            if !acc.is_touched() {
                Write::Nothing
            } else if acc.is_selfdestructed() || acc.is_empty() {
                Write::Set(StateKey::Account(a), None)
            } else if acc.is_created() && acc.info.code_hash != KECCAK_EMPTY {
                let value = Some(AccountState::from_info(&acc.info).encode());
                Write::SetWithCode(StateKey::Account(a), value, acc.info.code_hash)
            } else {
                Write::Set(StateKey::Account(a), Some(AccountState::from_info(&acc.info).encode()))
            }
        }
        JournalKey::Slot(a, k) => {
            let slot = journal::slot_of(value, Default::default()).ok_or_else(malformed)?;
            let Some(account) = account else { return Ok(Write::Nothing) };
            let acc = journal::account_of(account, Default::default()).ok_or_else(malformed)?;
            if !acc.is_touched() {
                Write::Nothing
            } else if acc.is_selfdestructed() || acc.is_empty() {
                if acc.is_created() { Write::Nothing } else { Write::Set(StateKey::Storage(a, k), None) }
            } else {
                let v = slot.present_value;
                Write::Set(StateKey::Storage(a, k), (!v.is_zero()).then(|| encode_slot(v)))
            }
        }
    })
}

/// One commit step: the [`CommitState`] in parts, the map's least entry,
/// for a slot its account's entry (or its absence), and when the entry
/// writes, the state key's value in the state root as it stands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CommitStep {
    /// The state before the step.
    pub state: CommitState,
    /// The least entry of the map, with its proof.
    pub entry: JournalProof,
    /// For a slot: its account's entry or its absence.
    pub account: Option<JournalProof>,
    /// The written key's value now, proven against the state root.
    pub current: Option<StateProof>,
    /// For an account created with code: the code, stored under its hash.
    pub code: Option<CodeWrite>,
}

/// The code a created account's commit stores: the code, whether the
/// state holds it already (the same code deployed before: a code's value
/// is the code its key hashes), and the key's proof in the state root.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CodeWrite {
    /// The code.
    pub code: Vec<u8>,
    /// Whether the state holds it already.
    pub present: bool,
    /// Its key's proof against the state root as it stands.
    pub proof: SmtProof,
}

/// Commits the least entry of the map: the [`CommitState`] after it.
pub fn verify_commit(step: &CommitStep, agreed: &Hash) -> InstructionVerdict {
    match commit(step, agreed) {
        Ok(s) => InstructionVerdict::Next(s.commitment()),
        Err(reason) => InstructionVerdict::Rejected(reason),
    }
}

pub(super) fn commit(step: &CommitStep, agreed: &Hash) -> Checked<CommitState> {
    let s = &step.state;
    if s.commitment() != *agreed || s.entries == PLACEHOLDER {
        return Err("not a journal the state agreed holds".into());
    }
    let e = &step.entry;
    let key = e.key.key_hash();
    let value = e.value.as_deref().ok_or("the entry taken is one the map holds")?;
    e.proof.verify(&s.entries, &key, Some(value)).map_err(|err| format!("the entry: {err}"))?;
    if !e.proof.is_leftmost(&key) {
        return Err("not the map's least entry".into());
    }
    let account = match (e.key, &step.account) {
        (JournalKey::Slot(a, _), Some(p)) if p.key == JournalKey::Account(a) => {
            p.proof
                .verify(&s.entries, &p.key.key_hash(), p.value.as_deref())
                .map_err(|err| format!("the slot's account: {err}"))?;
            p.value.as_deref()
        }
        (JournalKey::Slot(..), _) => return Err("a slot's step carries its account's entry".into()),
        (_, None) => None,
        (_, Some(_)) => return Err("only a slot's step carries an account".into()),
    };
    let mut trace = s.trace;
    let mut writes = Vec::new();
    match (commit_write(&e.key, value, account)?, &step.current, &step.code) {
        (Write::Nothing, None, None) => {}
        (Write::Set(k, v), Some(p), None) if p.key == k => writes.push((p.clone(), v)),
        (Write::SetWithCode(k, v, hash), Some(p), Some(c)) if p.key == k => {
            if c.code.len() as u64 > super::MAX_CODE || alloy_primitives::keccak256(&c.code) != hash {
                return Err("not the code the account was created with".into());
            }
            let key = StateKey::Code(hash);
            let now = StateProof { key, value: c.present.then(|| c.code.clone()), proof: c.proof.clone() };
            writes.push((p.clone(), v));
            writes.push((now, Some(c.code.clone())));
        }
        _ => return Err("not the state value the entry writes".into()),
    }
    if !writes.is_empty() {
        for (p, _) in &writes {
            p.verify(&trace.state_root).map_err(|err| format!("the state now: {err}"))?;
        }
        let hashes: Vec<[u8; 32]> = writes.iter().map(|(p, _)| p.key.key_hash().0).collect();
        let mut state = PartialTree::from_proofs(hashes.iter().zip(writes.iter().map(|(p, _)| &p.proof)))
            .map_err(|e| e.to_string())?;
        for (hash, (_, v)) in hashes.iter().zip(&writes) {
            state.update(hash, v.as_deref()).map_err(|e| e.to_string())?;
        }
        trace.state_root = Hash(state.hash());
    }
    let mut map = PartialTree::from_proofs([(&key, &e.proof)]).map_err(|e| e.to_string())?;
    map.update(&key, None).map_err(|e| e.to_string())?;
    Ok(CommitState { entries: map.hash(), trace })
}

/// A step from `c_i`: the trace has ended and stays there.
pub fn verify_done(trace: &TraceCommitment, agreed: &Hash) -> InstructionVerdict {
    if trace.hash() == *agreed {
        InstructionVerdict::Next(*agreed)
    } else {
        InstructionVerdict::Rejected("not the item's end agreed".into())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use alloy_primitives::{Address, U256};

    use super::*;
    use crate::machine::journal::JournalTree;

    /// A commit takes only the map's least entry: any other one, with its
    /// own valid proof, proves nothing.
    #[test]
    fn only_the_least_entry_is_committed() {
        let a = Address::repeat_byte(1);
        let entries: BTreeMap<JournalKey, Vec<u8>> = (0..6u64)
            .map(|k| {
                (JournalKey::Transient(a, U256::from(k)), U256::from(k + 1).to_be_bytes::<32>().to_vec())
            })
            .collect();
        let tree = JournalTree::of(&entries);
        let state = CommitState { entries: tree.root(), trace: TraceCommitment::start(Hash::ZERO) };
        let least = entries.keys().min_by_key(|k| k.key_hash()).copied().unwrap();
        let mut upheld = 0;
        for (key, value) in &entries {
            let step = CommitStep {
                state,
                entry: JournalProof { key: *key, value: Some(value.clone()), proof: tree.prove(key) },
                account: None,
                current: None,
                code: None,
            };
            let v = verify_commit(&step, &state.commitment());
            if *key == least {
                upheld += 1;
                assert!(matches!(v, InstructionVerdict::Next(_)), "{v:?}");
            } else {
                assert_eq!(v, InstructionVerdict::Rejected("not the map's least entry".into()));
            }
        }
        assert_eq!(upheld, 1);
    }
}
