//! A transaction's whole level-2 trace: its start `s_0` (derived from
//! `c_{i-1}` and the item), the prologue's step to its first instruction
//! (or to its frame's end when it runs none), its instructions, its
//! frame's end, and the steps after it (to come: the epilogue and the
//! journal's commit into the state root, ending on `c_i`).

use bridge::TraceCommitment;

use super::host::StepDb;
use super::trace::{Tracer, replay};
use super::*;
use crate::state::{StateKey, StateProof};

/// `s_0` of an item's level-2 trace: its start, from `c_{i-1}` and the
/// item's hash (both fixed by level 1).
pub fn start_state(pre: &TraceCommitment, item: &Hash) -> Hash {
    hash_domain(b"optishard.item_start", &[&pre.hash().0, &item.0])
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
/// delegate, a created address).
pub const MAX_PROLOGUE_PROOFS: usize = 4;
/// Most codes a prologue reads (the sender's delegation, the target's).
pub const MAX_PROLOGUE_CODES: usize = 2;

/// Whether the prologue is a step yet: not for a create, a call to the
/// bridge, or an EIP-7702 authorization list (each reads or writes more
/// than the prologue's step carries).
fn prologue_covered(tx: &TxEnv) -> bool {
    use revm::context_interface::Transaction;
    !tx.kind.is_create() && tx.kind.to() != Some(&bridge::BRIDGE_ADDRESS) && tx.authorization_list_len() == 0
}

/// The prologue's step of `tx` over `base` (the state before it).
pub fn prologue_step<R: ProvableState + Clone>(
    base: R,
    params: &BlockParams,
    tx: &SignedTx,
) -> Result<PrologueStep> {
    let (t, _) = replay(base.clone(), params, tx.tx_env(), Tracer::first());
    let Some((_, reads)) = t.first else {
        return Err(Error::Execution("the transaction never starts".into()));
    };
    let mut pre = Vec::new();
    let mut codes = Vec::new();
    for key in reads {
        match key {
            StateKey::Code(hash) => codes.push(base.code_by_hash_ref(hash)?.original_bytes().to_vec()),
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
    let db = match StepDb::from_proofs(&step.pre, &step.codes, &env.pre_root) {
        Ok(db) => db,
        Err(reason) => return InstructionVerdict::Rejected(reason),
    };
    // a read of anything the step lacks fails the replay before its first
    // state: no first state, a refused step
    let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        replay(db, &env.params, env.tx.clone(), Tracer::first()).0.first
    }));
    match run {
        Ok(Some((first, _))) => InstructionVerdict::Next(first),
        Ok(None) => InstructionVerdict::Rejected("the step lacks what the prologue reads".into()),
        Err(_) => InstructionVerdict::Rejected("the step's values break the prologue".into()),
    }
}
