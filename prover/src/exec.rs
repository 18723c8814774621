//! The state-transition function: one block's items over a pre-state.
//!
//! Proposers, importing validators and the stateless step verifier all call
//! [`execute_items`]; only the database underneath differs (the committed
//! state, or a witness).

use std::collections::BTreeSet;

use alloy_primitives::{Address, B256, Bytes, U256};
use bridge::{
    BRIDGE_ADDRESS, Hash, MAX_MESSAGE_GAS, Message, MessageKind, ShardId, TraceCommitment, TraceState,
};
use revm::context::result::{EVMError, ExecutionResult, Output};
use revm::context::{BlockEnv, CfgEnv};
use revm::context_interface::ContextTr;
use revm::primitives::KECCAK_EMPTY;
use revm::primitives::hardfork::SpecId;
use revm::{Context, DatabaseRef, ExecuteEvm, MainBuilder, MainContext};
use serde::{Deserialize, Serialize};

use crate::bridge::{ShardPrecompiles, channel_slot, messages_in};
use crate::overlay::{BalanceMoves, Overlay};
use crate::state::{AccountState, AuthState, ChangeSet, StateKey};
use crate::{Error, Receipt, Result, SignedTx};

/// Receipt type byte of a delivered message (not an Ethereum transaction
/// type; Ethereum JSON-RPC serves transactions' receipts only).
pub const MESSAGE_RECEIPT_TYPE: u8 = 0x7e;

/// The storage slot of the bridge account holding the next nonce expected
/// on the inbound channel from `src` (outbound counters are slots
/// `0..2^32`, [`channel_slot`]).
pub fn inbound_slot(src: ShardId) -> U256 {
    U256::from(1u64 << 32) + U256::from(src.0)
}

/// The EVM rules shards run.
pub const SPEC: SpecId = SpecId::OSAKA;

/// Everything about a block that execution depends on besides its items.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockParams {
    /// The shard.
    pub shard: ShardId,
    /// Number of shards in the network (message destinations are below it).
    pub shards: u32,
    /// Ethereum chain id (base + shard id).
    pub chain_id: u64,
    /// Block height.
    pub number: u64,
    /// Unix seconds.
    pub timestamp: u64,
    /// Receives priority fees.
    pub beneficiary: Address,
    /// Block gas limit.
    pub gas_limit: u64,
    /// EIP-1559 base fee.
    pub base_fee: u64,
    /// `PREVRANDAO` value.
    pub prevrandao: B256,
    /// The EVM rules: always [`SPEC`] on a shard (every node derives it,
    /// it is not carried); Ethereum's state tests run other forks' fixtures
    /// through the same function.
    #[serde(skip, default = "shard_fork")]
    pub fork: SpecId,
}

fn shard_fork() -> SpecId {
    SPEC
}

impl BlockParams {
    /// The block as revm sees it.
    pub fn block_env(&self) -> BlockEnv {
        BlockEnv {
            number: U256::from(self.number),
            beneficiary: self.beneficiary,
            timestamp: U256::from(self.timestamp),
            gas_limit: self.gas_limit,
            basefee: self.base_fee,
            difficulty: U256::ZERO,
            prevrandao: Some(self.prevrandao),
            ..Default::default()
        }
    }

    /// revm configuration for this shard.
    pub fn cfg_env(&self) -> CfgEnv {
        let mut cfg = CfgEnv::new_with_spec(self.fork);
        cfg.chain_id = self.chain_id;
        cfg
    }
}

/// One item of a block: an inbox message (consumed first, in channel
/// order) or a user transaction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Item {
    /// A user transaction.
    Tx(SignedTx),
    /// A message from another shard (a call or a refund).
    Message(Message),
}

impl Item {
    /// Leaf of the block's items tree.
    pub fn item_hash(&self) -> Hash {
        match self {
            Item::Tx(tx) => tx.item_hash(),
            Item::Message(m) => bridge::message_item_hash(&m.id()),
        }
    }

    /// The item's hash as clients see it: the Ethereum transaction hash,
    /// or the message id.
    pub fn tx_hash(&self) -> B256 {
        match self {
            Item::Tx(tx) => tx.hash,
            Item::Message(m) => B256::from(m.id().0),
        }
    }

    /// Most gas the item may use: what the block must have left for it.
    pub fn gas_limit(&self) -> u64 {
        match self {
            Item::Tx(tx) => alloy_consensus::Transaction::gas_limit(&tx.envelope),
            Item::Message(m) => match m.kind {
                MessageKind::Call => m.gas_limit,
                MessageKind::Refund { .. } => 0,
            },
        }
    }
}

/// How the block producer treats an item that cannot be included.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Proposer: skip invalid items (and items over the gas limit) and report them.
    Build,
    /// Importer / verifier: any invalid item makes the block invalid.
    Verify,
}

/// What one included item did.
#[derive(Clone, Debug)]
pub struct ItemOutcome {
    /// Its receipt.
    pub receipt: Receipt,
    /// `receipt.hash()`, computed once for the receipts root and the trace.
    pub receipt_hash: Hash,
    /// State writes it made (only values that changed).
    pub changes: ChangeSet,
    /// Keys it read (accounts, storage, code hashes as `Code` keys).
    pub reads: BTreeSet<StateKey>,
    /// Block hashes it read.
    pub block_hashes_read: BTreeSet<u64>,
    /// Messages it emitted (into the block's outbox), in order.
    pub messages: Vec<Message>,
}

/// An item the proposer left out.
#[derive(Clone, Debug)]
pub struct Rejected {
    /// Index in the candidate list.
    pub index: usize,
    /// The item's hash.
    pub hash: B256,
    /// Why.
    pub reason: String,
    /// Left out only because the block had no gas left for it: it stays
    /// valid for a later block.
    pub block_full: bool,
    /// What it read before it was found invalid (what a witness of its
    /// invalidity must prove).
    pub reads: BTreeSet<StateKey>,
}

/// Result of executing a list of items.
#[derive(Clone, Debug)]
pub struct Execution {
    /// Items included, in order.
    pub items: Vec<Item>,
    /// Their outcomes.
    pub outcomes: Vec<ItemOutcome>,
    /// Items left out (only in [`Mode::Build`]).
    pub rejected: Vec<Rejected>,
    /// Gas used by all included items.
    pub gas_used: u64,
    /// What the included items did to the sum of balances.
    pub balance_moves: BalanceMoves,
}

impl Execution {
    /// All writes of the block, merged in order.
    pub fn block_changes(&self) -> ChangeSet {
        let mut all = ChangeSet::new();
        for o in &self.outcomes {
            all.extend(o.changes.iter().map(|(k, v)| (*k, v.clone())));
        }
        all
    }

    /// Receipts in item order.
    pub fn receipts(&self) -> Vec<Receipt> {
        self.outcomes.iter().map(|o| o.receipt.clone()).collect()
    }

    /// Merkle root of the receipts (the header's `receipts_root`).
    pub fn receipts_root(&self) -> Hash {
        self.final_trace().receipts.root()
    }

    /// Merkle root of the items.
    pub fn items_root(&self) -> Hash {
        bridge::merkle_root(&self.items.iter().map(Item::item_hash).collect::<Vec<_>>())
    }

    /// The messages the block emitted, in order (its outbox).
    pub fn outbox(&self) -> Vec<Message> {
        self.outcomes.iter().flat_map(|o| o.messages.iter().cloned()).collect()
    }

    /// Merkle root of the outbox's message ids (the header's `outbox_root`).
    pub fn outbox_root(&self) -> Hash {
        self.final_trace().outbox.root()
    }

    /// The trace state (frontiers, gas) after each item: `c_1..c_n` but
    /// the state roots.
    pub fn trace_states(&self) -> Vec<TraceState> {
        let mut t = TraceState::start();
        self.outcomes
            .iter()
            .map(|o| {
                o.extend(&mut t);
                t.clone()
            })
            .collect()
    }

    /// The trace state after the last item.
    pub fn final_trace(&self) -> TraceState {
        let mut t = TraceState::start();
        for o in &self.outcomes {
            o.extend(&mut t);
        }
        t
    }

    /// `c_n`, given the post-state root.
    pub fn final_commitment(&self, post_state_root: Hash) -> TraceCommitment {
        self.final_trace().commitment(post_state_root)
    }

    /// Every trace commitment `c_1..c_n`, computing the intermediate state
    /// roots over `state` at `base` (nothing is written). This is the lazy
    /// part of the trace: only disputes and tests need it.
    pub fn trace(&self, state: &AuthState, base: u64) -> Result<Vec<TraceCommitment>> {
        let changes: Vec<ChangeSet> = self.outcomes.iter().map(|o| o.changes.clone()).collect();
        let roots = state.roots_after(base, &changes)?;
        Ok(roots.into_iter().zip(self.trace_states()).map(|(root, t)| t.commitment(root)).collect())
    }
}

impl ItemOutcome {
    /// Appends this item's messages, receipt and gas to a running trace.
    pub fn extend(&self, trace: &mut TraceState) {
        trace.push(self.messages.iter().map(Message::id), &self.receipt_hash, self.receipt.gas_used);
    }
}

pub(crate) type ShardEvm<R> = revm::context::Evm<
    Context<BlockEnv, revm::context::TxEnv, CfgEnv, Overlay<R>>,
    (),
    revm::handler::instructions::EthInstructions<
        revm::interpreter::interpreter::EthInterpreter,
        Context<BlockEnv, revm::context::TxEnv, CfgEnv, Overlay<R>>,
    >,
    ShardPrecompiles,
    revm::handler::EthFrame<revm::interpreter::interpreter::EthInterpreter>,
>;

fn shard_evm<R: DatabaseRef<Error = Error>>(
    base: R,
    params: &BlockParams,
    cfg: CfgEnv,
    block: BlockEnv,
) -> ShardEvm<R> {
    let mut evm = Context::mainnet()
        .with_db(Overlay::new(base))
        .with_block(block)
        .with_cfg(cfg)
        .build_mainnet()
        .with_precompiles(ShardPrecompiles::new(params.fork, params.shard, params.shards));
    crate::ranges::guard_ranges(&mut evm.instruction);
    evm
}

/// Executes `candidates` in order over `base`: the one state-transition function.
pub fn execute_items<R: DatabaseRef<Error = Error>>(
    base: R,
    params: &BlockParams,
    candidates: Vec<Item>,
    mode: Mode,
) -> Result<Execution> {
    execute_items_after(base, params, candidates, mode, 0)
}

/// [`execute_items`] for items that follow others in their block, which
/// used `gas_before` of its gas (the single step starts mid-block).
pub fn execute_items_after<R: DatabaseRef<Error = Error>>(
    base: R,
    params: &BlockParams,
    candidates: Vec<Item>,
    mode: Mode,
    gas_before: u64,
) -> Result<Execution> {
    let mut evm = shard_evm(base, params, params.cfg_env(), params.block_env());
    let mut out = Execution {
        items: Vec::new(),
        outcomes: Vec::new(),
        rejected: Vec::new(),
        gas_used: 0,
        balance_moves: BalanceMoves::default(),
    };
    for (index, item) in candidates.into_iter().enumerate() {
        let reject = |reason: String, block_full: bool, reads, out: &mut Execution| -> Result<()> {
            match mode {
                Mode::Build => {
                    out.rejected.push(Rejected { index, hash: item.tx_hash(), reason, block_full, reads });
                    Ok(())
                }
                Mode::Verify => Err(Error::InvalidTransaction { hash: item.tx_hash(), reason }),
            }
        };
        let limit = item.gas_limit();
        if gas_before.saturating_add(out.gas_used).saturating_add(limit) > params.gas_limit {
            reject(
                format!("gas limit {limit} exceeds the block's remaining gas"),
                limit <= params.gas_limit,
                BTreeSet::new(),
                &mut out,
            )?;
            continue;
        }
        let done = match &item {
            Item::Tx(tx) => transact(&mut evm, params, tx)?,
            Item::Message(m) => deliver(&mut evm, params, m)?,
        };
        let (receipt, changes, messages) = match done {
            Ok(d) => d,
            Err(reason) => {
                let (reads, _) = evm.ctx.db_mut().take_reads();
                reject(reason, false, reads, &mut out)?;
                continue;
            }
        };
        let (reads, block_hashes_read) = evm.ctx.db_mut().take_reads();
        out.gas_used += receipt.gas_used;
        let receipt_hash = receipt.hash();
        out.outcomes.push(ItemOutcome { receipt, receipt_hash, changes, reads, block_hashes_read, messages });
        out.items.push(item);
    }
    out.balance_moves = evm.ctx.db_mut().balance_moves;
    Ok(out)
}

/// What an item did, or why it is invalid in its position.
type Done = std::result::Result<(Receipt, ChangeSet, Vec<Message>), String>;

/// Whether an item's run is metered against [`WITNESS_BUDGET`]: only what
/// a level-2 trace does not step through, so its level-1 step must fit in
/// a move: a transaction with an EIP-7702 authorization list (which
/// shards refuse anyway). Since `stf_version` 4 any other transaction, and
/// since version 5 any delivered message, runs as on Ethereum, however
/// much state it touches.
pub fn witness_metered(tx: &revm::context::TxEnv) -> bool {
    use revm::context_interface::Transaction;
    tx.authorization_list_len() != 0
}

fn transact<R: DatabaseRef<Error = Error>>(
    evm: &mut ShardEvm<R>,
    params: &BlockParams,
    tx: &SignedTx,
) -> Result<Done> {
    let env = tx.tx_env();
    let metered = witness_metered(&env);
    let res = if metered { Overlay::metered(evm, |evm| evm.transact(env)) } else { evm.transact(env) };
    if metered
        && res.is_err()
        && let Some(used) = evm.ctx.db_mut().over_budget()
    {
        return over_budget(evm, params, tx, used);
    }
    let res = match res {
        Ok(r) => r,
        Err(EVMError::Transaction(e)) => return Ok(Err(e.to_string())),
        Err(EVMError::Database(e)) => return Err(e),
        Err(other) => return Err(Error::Execution(other.to_string())),
    };
    if metered
        && let Err(Error::WitnessBudget { used }) =
            Overlay::metered(evm, |evm| evm.ctx.db_mut().charge_writes(&res.state))
    {
        return over_budget(evm, params, tx, used);
    }
    let changes = evm.ctx.db_mut().commit_item(res.state)?;
    let messages = match &res.result {
        ExecutionResult::Success { logs, .. } => messages_in(logs, params.shard),
        _ => Vec::new(),
    };
    let receipt = to_receipt(tx.hash, tx.envelope.tx_type() as u8, res.result, &messages);
    Ok(Ok((receipt, changes, messages)))
}

/// A transaction that went over [`WITNESS_BUDGET`] (`used` bytes): it
/// fails like one out of gas. Its sender pays the whole gas limit at the
/// price it offered (the base fee burned, the tip to the beneficiary) and
/// its nonce moves on; nothing else changes.
fn over_budget<R: DatabaseRef<Error = Error>>(
    evm: &mut ShardEvm<R>,
    params: &BlockParams,
    tx: &SignedTx,
    used: usize,
) -> Result<Done> {
    use alloy_consensus::Transaction;
    let gas = tx.envelope.gas_limit();
    let price = tx.envelope.effective_gas_price(Some(params.base_fee));
    let fee = U256::from(gas) * U256::from(price);
    let tip = U256::from(gas) * U256::from(price.saturating_sub(u128::from(params.base_fee)));
    let db = evm.ctx.db_mut();
    let before = db.account(tx.sender)?;
    let mut sender =
        before.unwrap_or(AccountState { nonce: 0, balance: U256::ZERO, code_hash: KECCAK_EMPTY });
    // revm checked both before running it; checked again, as a rule
    let (Some(balance), Some(nonce)) = (sender.balance.checked_sub(fee), sender.nonce.checked_add(1)) else {
        return Ok(Err("cannot pay for the gas of an item over its witness budget".into()));
    };
    (sender.balance, sender.nonce) = (balance, nonce);
    let mut changes = ChangeSet::new();
    changes.insert(StateKey::Account(tx.sender), Some(sender.encode()));
    db.accounts.insert(tx.sender, Some(sender));
    db.moved(before, Some(sender));
    db.system_credit(params.beneficiary, tip, &mut changes)?;
    let receipt = Receipt {
        tx_hash: tx.hash,
        tx_type: tx.envelope.tx_type() as u8,
        success: false,
        gas_used: gas,
        logs: vec![],
        contract_address: None,
        output: Bytes::from(format!("witness budget exceeded ({used} bytes)").into_bytes()),
        messages: vec![],
    };
    Ok(Ok((receipt, changes, vec![])))
}

/// Delivers an inbox message: checks it is this shard's and the next of
/// its channel, then a refund credits `to`; a call mints `value` to the
/// bridge and calls `to` from it with `data` (no fee: the gas was bought on
/// the source), and if the call fails, the value goes back to its sender
/// by a refund message on the reverse channel. The bridge account's
/// balance and nonce are the same after as before (value passes through).
fn deliver<R: DatabaseRef<Error = Error>>(
    evm: &mut ShardEvm<R>,
    params: &BlockParams,
    m: &Message,
) -> Result<Done> {
    if let Err(why) = message_fits(m, params) {
        return Ok(Err(why));
    }
    let expected = evm.ctx.db_mut().counter(BRIDGE_ADDRESS, inbound_slot(m.src))?;
    if m.nonce != expected {
        return Ok(Err(format!(
            "message nonce {} on channel {} -> {}, expected {expected}",
            m.nonce, m.src, m.dst
        )));
    }
    let id = B256::from(m.id().0);
    let mut changes = ChangeSet::new();
    let (receipt, messages) = match m.kind {
        MessageKind::Refund { .. } => {
            evm.ctx.db_mut().system_credit(m.to, m.value, &mut changes)?;
            (message_receipt(id, true, 0, vec![], &[]), vec![])
        }
        MessageKind::Call => {
            let bridge_before = evm.ctx.db_mut().account(BRIDGE_ADDRESS)?;
            set_delivering(evm, Some(m));
            let result = evm.transact(delivery_env(m));
            set_delivering(evm, None);
            let mut res = match result {
                Ok(r) => r,
                // the source's bridge checked what the destination's rules
                // need; a call the EVM refuses outright is the message's
                // fault, and decided like any failure (refund)
                Err(EVMError::Transaction(e)) => {
                    return refund_failed(evm, m, id, 0, e.to_string(), changes);
                }
                Err(EVMError::Database(e)) => return Err(e),
                Err(other) => return Err(Error::Execution(other.to_string())),
            };
            // value passed through the bridge: revm gave it max(B, v) to
            // pay from (minting v - B when short); the value it paid out
            // was minted for the recipient, and a failed call's value is
            // carried back by the refund: the bridge ends where it started
            // plus whatever flowed into it during the call (a SELFDESTRUCT
            // to it). Its nonce is restored.
            if let Some(acc) = res.state.get_mut(&BRIDGE_ADDRESS) {
                let before = bridge_before.unwrap_or(AccountState {
                    nonce: 0,
                    balance: U256::ZERO,
                    code_hash: KECCAK_EMPTY,
                });
                (acc.info.balance, acc.info.nonce) =
                    bridge_after(acc.info.balance, &before, m, res.result.is_success());
            }
            changes.extend(evm.ctx.db_mut().commit_item(res.state)?);
            let gas = res.result.tx_gas_used();
            if !res.result.is_success() {
                let why = match &res.result {
                    ExecutionResult::Halt { reason, .. } => format!("{reason:?}"),
                    _ => "reverted".into(),
                };
                return refund_failed(evm, m, id, gas, why, changes);
            }
            let ExecutionResult::Success { logs, .. } = res.result else { unreachable!("checked above") };
            let messages = messages_in(&logs, params.shard);
            (message_receipt(id, true, gas, logs, &messages), messages)
        }
    };
    evm.ctx.db_mut().system_store(
        BRIDGE_ADDRESS,
        inbound_slot(m.src),
        U256::from(m.nonce + 1),
        &mut changes,
    )?;
    Ok(Ok((receipt, changes, messages)))
}

/// Whether a message may be delivered on the shard of `params` (its
/// channel's counter aside): it is this shard's, from another, and a
/// call's gas limit is within the bridge's bounds.
pub(crate) fn message_fits(m: &Message, params: &BlockParams) -> std::result::Result<(), String> {
    if m.dst != params.shard || m.src == params.shard || m.src.0 >= params.shards {
        return Err(format!("message {} -> {} delivered on shard {}", m.src, m.dst, params.shard));
    }
    if m.kind == MessageKind::Call
        && (m.gas_limit < Message::min_gas(&m.data) || m.gas_limit > MAX_MESSAGE_GAS)
    {
        return Err(format!("message gas limit {} out of range", m.gas_limit));
    }
    Ok(())
}

/// The transaction a call message runs as: from the bridge, `value` minted
/// to it as needed, no fee (its gas was bought on the source), no nonce.
pub(crate) fn delivery_env(m: &Message) -> revm::context::TxEnv {
    revm::context::TxEnv {
        tx_type: 0,
        caller: BRIDGE_ADDRESS,
        gas_limit: m.gas_limit,
        gas_price: 0,
        kind: revm::primitives::TxKind::Call(m.to),
        value: m.value,
        data: Bytes::from(m.data.clone()),
        nonce: 0,
        chain_id: None,
        ..Default::default()
    }
}

/// Sets an EVM up to deliver `m` (`None`: back to transactions): the
/// nonce, balance and base-fee checks off, and the bridge precompile
/// answering `messageSender()` with the message's source and sender.
pub(crate) fn delivering_cfg(cfg: &mut CfgEnv, m: Option<&Message>) {
    let on = m.is_some();
    (cfg.disable_nonce_check, cfg.disable_balance_check, cfg.disable_base_fee) = (on, on, on);
}

fn set_delivering<R: DatabaseRef<Error = Error>>(evm: &mut ShardEvm<R>, m: Option<&Message>) {
    evm.precompiles.delivering = m.map(|m| (m.src, m.sender));
    delivering_cfg(&mut evm.ctx.cfg, m);
}

/// The bridge's balance and nonce after delivering `m` (`before`: its
/// account before the item; `balance`: its balance after revm's run):
/// what revm minted for the call taken back, the value paid out on
/// success minted for the recipient, the nonce restored.
pub(crate) fn bridge_after(balance: U256, before: &AccountState, m: &Message, success: bool) -> (U256, u64) {
    // after: max(B, v) - v + inflow on success, max(B, v) on failure; we
    // want B + inflow either way
    let minted = m.value.saturating_sub(before.balance);
    let paid_out = if success { m.value } else { U256::ZERO };
    (balance.saturating_add(paid_out).saturating_sub(minted), before.nonce)
}

/// A delivered call failed (`why`): the message is consumed and its value
/// refunded to its sender on the source.
fn refund_failed<R: DatabaseRef<Error = Error>>(
    evm: &mut ShardEvm<R>,
    m: &Message,
    id: B256,
    gas: u64,
    why: String,
    mut changes: ChangeSet,
) -> Result<Done> {
    let db = evm.ctx.db_mut();
    let nonce = db.counter(BRIDGE_ADDRESS, channel_slot(m.src))?;
    db.system_store(BRIDGE_ADDRESS, channel_slot(m.src), U256::from(nonce + 1), &mut changes)?;
    db.system_store(BRIDGE_ADDRESS, inbound_slot(m.src), U256::from(m.nonce + 1), &mut changes)?;
    let refund = m.refund(nonce);
    let mut receipt = message_receipt(id, false, gas, vec![], std::slice::from_ref(&refund));
    receipt.output = Bytes::from(why.into_bytes());
    Ok(Ok((receipt, changes, vec![refund])))
}

fn message_receipt(
    id: B256,
    success: bool,
    gas: u64,
    logs: Vec<alloy_primitives::Log>,
    messages: &[Message],
) -> Receipt {
    Receipt {
        tx_hash: id,
        tx_type: MESSAGE_RECEIPT_TYPE,
        success,
        gas_used: gas,
        logs,
        contract_address: None,
        output: Bytes::new(),
        messages: messages.iter().map(Message::id).collect(),
    }
}

fn to_receipt(hash: B256, tx_type: u8, result: ExecutionResult, messages: &[Message]) -> Receipt {
    let (success, gas, logs, contract_address, output) = match result {
        ExecutionResult::Success { gas, logs, output, .. } => match output {
            Output::Create(data, addr) => (true, gas, logs, addr, data),
            Output::Call(data) => (true, gas, logs, None, data),
        },
        // a failed item keeps its revert data for clients but emits nothing
        ExecutionResult::Revert { gas, output, .. } => (false, gas, vec![], None, output),
        ExecutionResult::Halt { gas, .. } => (false, gas, vec![], None, Default::default()),
    };
    Receipt {
        tx_hash: hash,
        tx_type,
        success,
        gas_used: gas.tx_gas_used(),
        logs,
        contract_address,
        output,
        messages: messages.iter().map(Message::id).collect(),
    }
}

/// Simulates one call over `base` without committing anything (`eth_call`,
/// `eth_estimateGas`). Balance, nonce and base-fee checks are relaxed as
/// Ethereum nodes relax them for calls. `metered`: as a transaction would
/// run, failing past [`WITNESS_BUDGET`] if it is one the budget meters
/// ([`witness_metered`]: an estimate must not promise what a block would
/// fail), with [`Error::OverBudget`] saying what it touched; `eth_call`
/// reads are not transactions and run unmetered.
pub fn simulate<R: DatabaseRef<Error = Error>>(
    base: R,
    params: &BlockParams,
    tx: revm::context::TxEnv,
    metered: bool,
) -> Result<ExecutionResult> {
    let mut cfg = params.cfg_env();
    cfg.disable_nonce_check = true;
    // calls may use more gas than one transaction may (as on Ethereum nodes)
    cfg.tx_gas_limit_cap = Some(u64::MAX);
    let mut block = params.block_env();
    if tx.gas_price == 0 {
        block.basefee = 0;
    }
    let metered = metered && witness_metered(&tx);
    let mut evm = shard_evm(base, params, cfg, block);
    evm.ctx.db_mut().metered = metered;
    let over = |evm: &mut ShardEvm<R>| Error::OverBudget(Box::new(evm.ctx.db_mut().footprint()));
    let res = evm.transact(tx);
    if metered && evm.ctx.db_mut().over_budget().is_some() {
        return Err(over(&mut evm));
    }
    match res {
        Ok(r) => {
            if metered && evm.ctx.db_mut().charge_writes(&r.state).is_err() {
                return Err(over(&mut evm));
            }
            Ok(r.result)
        }
        Err(EVMError::Database(e)) => Err(e),
        Err(EVMError::Transaction(e)) => {
            Err(Error::InvalidTransaction { hash: B256::ZERO, reason: e.to_string() })
        }
        Err(other) => Err(Error::Execution(other.to_string())),
    }
}
