//! Ethereum JSON-RPC over a shard node, answering as Ethereum nodes do, plus
//! `optishard_getProof`.

use std::net::SocketAddr;
use std::sync::Arc;

use alloy_consensus::{
    Eip658Value, Receipt as EthReceipt, ReceiptEnvelope, ReceiptWithBloom, Transaction as _, TxEnvelope,
};
use alloy_eips::eip2718::Decodable2718;
use alloy_eips::{BlockId, BlockNumberOrTag};
use alloy_primitives::{Address, B256, Bloom, Bytes, TxKind, U64, U256};
use alloy_rpc_types_eth::{
    Block, BlockTransactions, FeeHistory, Filter, FilterBlockOption, Header, Log as RpcLog, Transaction,
    TransactionReceipt, TransactionRequest,
};
use jsonrpsee::server::{BatchRequestConfig, RpcModule, Server, ServerConfig, ServerHandle};
use jsonrpsee::types::Params;
use prover::{AccountState, BlockParams, ExecutionResult, StateKey, simulate};

use crate::node::TX_GAS_CAP;
use revm::context::TxEnv;
use serde::Serialize;
use tracing::debug;

use crate::node::ShardNode;
use crate::store::{StoredBlock, StoredBody};
use crate::validator::ValidatorStatus;
use crate::{Error, Result};
use bridge::InboxEntry;

mod errors;
pub use errors::revert_reason;
use errors::*;

/// Suggested priority fee (1 gwei).
const PRIORITY_FEE: u64 = 1_000_000_000;
/// Widest block range one `eth_getLogs` may scan.
const MAX_LOG_RANGE: u64 = 10_000;

/// The smallest gas limit in `(lo, cap]` for which `succeeds` holds,
/// given that it holds at `cap` and that `used` was used there: tries the
/// figure a call needs with the 63/64 rule and a stipend first (as geth),
/// then bisects.
fn smallest_success(
    lo: u64,
    used: u64,
    cap: u64,
    succeeds: impl Fn(u64) -> RpcResult<bool>,
) -> RpcResult<u64> {
    let (mut lo, mut hi) = (lo, cap);
    let optimistic = used.saturating_add(2_300).saturating_mul(64) / 63;
    if optimistic > lo && optimistic < hi && succeeds(optimistic)? {
        hi = optimistic;
    }
    while lo + 1 < hi {
        let mid = lo + (hi - lo) / 2;
        if succeeds(mid)? {
            hi = mid;
        } else {
            lo = mid;
        }
    }
    Ok(hi)
}

struct Rpc {
    node: Arc<ShardNode>,
    status: Option<Arc<parking_lot::RwLock<ValidatorStatus>>>,
}

/// `optishard_shardInfo`.
#[derive(Clone, Serialize)]
struct ShardInfo {
    shard: bridge::ShardId,
    chain_id: u64,
    head: HeadInfo,
    mempool: usize,
    mismatches: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    validator: Option<ValidatorStatus>,
}

#[derive(Clone, Serialize)]
struct HeadInfo {
    height: u64,
    hash: bridge::Hash,
    slot: u64,
    state_root: bridge::Hash,
}

impl Rpc {
    fn head_height(&self) -> u64 {
        self.node.head().header.height
    }

    /// The height a tag names. `latest`/`pending`: the local head.
    /// `safe`: the newest local block the beacon has accepted (a receipt
    /// there is in the beacon's chain; one above it may still be reverted).
    /// `finalized`: the newest block the beacon reports final (its
    /// challenge window passed, and every block it depends on is final);
    /// the dev chain's single node is its own authority, so there every
    /// tag is its head.
    fn tag_height(&self, tag: BlockNumberOrTag) -> u64 {
        let head = self.head_height();
        match tag {
            BlockNumberOrTag::Number(n) => n,
            BlockNumberOrTag::Earliest => 0,
            BlockNumberOrTag::Latest | BlockNumberOrTag::Pending => head,
            BlockNumberOrTag::Safe => self.status.as_ref().map_or(head, |s| s.read().safe_height.min(head)),
            BlockNumberOrTag::Finalized => {
                self.status.as_ref().map_or(head, |s| s.read().finalized_height.min(head))
            }
        }
    }

    /// `optishard_getMessage`.
    fn message(&self, id: bridge::Hash) -> RpcResult<Option<serde_json::Value>> {
        let db = self.node.db();
        let (safe, finalized) = self
            .status
            .as_ref()
            .map_or((u64::MAX, u64::MAX), |s| (s.read().safe_height, s.read().finalized_height));
        // the beacon slot that included a height, and the first slot it can be final at
        let included = |height: u64| {
            self.status.as_ref().and_then(|s| {
                let s = s.read();
                s.included_slots.get(&height).map(|at| (*at, at.saturating_add(s.challenge_window_slots)))
            })
        };
        let place = |height: u64| -> RpcResult<serde_json::Value> {
            let h = db.header(height).map_err(internal)?.ok_or_else(|| server_err("header not found"))?;
            Ok(serde_json::json!({
                "shard": h.shard, "height": height, "slot": h.beacon_slot, "blockHash": h.hash(),
                "beaconSlot": included(height).map(|x| x.0),
                "earliestFinalSlot": included(height).map(|x| x.1),
                "final": height <= finalized,
            }))
        };
        if let Some((height, index)) = db.message_consumed(&id).map_err(internal)? {
            let Some(StoredBlock { header, body, receipts }) = db.stored_block(height).map_err(internal)?
            else {
                return Ok(None);
            };
            let (Some(entry), Some(receipt)) = (body.inbox.get(index as usize), receipts.get(index as usize))
            else {
                return Ok(None);
            };
            if entry.message.id() != id {
                // a revert and re-import between the two reads: ask again
                return Ok(None);
            }
            let status = if height <= finalized { "finalized" } else { "executed" };
            let refund = if receipt.success { None } else { receipt.messages.first().copied() };
            return Ok(Some(serde_json::json!({
                "id": id,
                "message": entry.message,
                "status": status,
                "source": { "shard": entry.message.src, "height": entry.height },
                "destination": place(header.height)?,
                "receipt": receipt,
                "refund": refund,
                "revertedFrom": self.node.reverted_from(&B256::from(id.0)),
            })));
        }
        if let Some(InboxEntry { message: m, height, .. }) = self.node.sent_message(&id).map_err(internal)? {
            let status = if height <= safe { "committed" } else { "pending" };
            return Ok(Some(serde_json::json!({
                "id": id,
                "message": m,
                "status": status,
                "source": place(height)?,
                "destination": null,
                "receipt": null,
                "refund": null,
                "revertedFrom": self.node.reverted_from(&B256::from(id.0)),
            })));
        }
        // its block was reverted (a fork, or a dispute discarded it) and it
        // has not found its new fate here yet
        if let Some(from) = self.node.reverted_from(&B256::from(id.0)) {
            return Ok(Some(serde_json::json!({
                "id": id,
                "status": "reverted",
                "revertedFrom": from,
            })));
        }
        Ok(None)
    }

    /// The height a block tag or number names, or a "header not found" error.
    fn resolve(&self, block: Option<BlockId>) -> RpcResult<u64> {
        let head = self.head_height();
        match block.unwrap_or(BlockId::Number(BlockNumberOrTag::Latest)) {
            BlockId::Number(BlockNumberOrTag::Number(n)) => {
                if n > head {
                    return Err(server_err("header not found"));
                }
                Ok(n)
            }
            BlockId::Number(tag) => Ok(self.tag_height(tag)),
            BlockId::Hash(h) => self
                .node
                .db()
                .height_of(&bridge::Hash(h.block_hash.0))
                .map_err(internal)?
                .ok_or_else(|| server_err("header not found")),
        }
    }

    fn state_version(&self, height: u64) -> RpcResult<u64> {
        let oldest = self.node.state().store().oldest_version().map_err(internal)?;
        if height < oldest {
            return Err(server_err(format!(
                "missing trie node: state of block {height} is pruned (oldest kept {oldest})"
            )));
        }
        Ok(height)
    }

    fn account(&self, address: Address, block: Option<BlockId>) -> RpcResult<Option<AccountState>> {
        let v = self.state_version(self.resolve(block)?)?;
        self.node.state().account(address, v).map_err(internal)
    }

    fn send_raw(&self, raw: Bytes) -> RpcResult<B256> {
        let hash = self.node.submit_user_tx(&raw).map_err(|e| server_err(e.message))?;
        debug!(target: "rpc", tx = %hash, "accepted transaction");
        Ok(hash)
    }

    fn call_env(&self, req: &TransactionRequest, gas: u64) -> TxEnv {
        let price = req.max_fee_per_gas.or(req.gas_price).unwrap_or(0);
        TxEnv {
            tx_type: if req.max_fee_per_gas.is_some() { 2 } else { 0 },
            caller: req.from.unwrap_or_default(),
            gas_limit: gas,
            gas_price: price,
            kind: req.to.unwrap_or(TxKind::Create),
            value: req.value.unwrap_or_default(),
            data: req.input.input().cloned().unwrap_or_default(),
            nonce: 0,
            // typed requests (cast sends `type`, `chainId`, EIP-1559 fees)
            // need a chain id in revm; the shard's own is the only valid one
            chain_id: Some(self.node.config().chain_id()),
            access_list: req.access_list.clone().unwrap_or_default(),
            gas_priority_fee: req.max_priority_fee_per_gas,
            ..Default::default()
        }
    }

    /// The state a call at `block` reads and the block contexts it runs in.
    /// What is about to be sent — an estimate at the head (any tag naming
    /// it), a call with no tag or `pending` — runs over the head's state in
    /// the blocks a transaction sent now would land in
    /// ([`ShardNode::pending_params`], the likeliest first), as anvil and
    /// reth run `pending`: an estimate made now is for the next block, not
    /// the last one. A call at `latest`, a number or a hash runs in that
    /// block's own context, as geth answers it.
    fn contexts(&self, block: Option<BlockId>, sending: bool) -> RpcResult<(u64, Vec<BlockParams>)> {
        // the head's state and the next block's context from one snapshot
        // (a block imported meanwhile must not mix two heads)
        let (head, pending) = self.node.pending_params();
        let head_tag = matches!(
            block,
            None | Some(BlockId::Number(BlockNumberOrTag::Latest | BlockNumberOrTag::Pending))
        );
        let height = self.state_version(if head_tag { head } else { self.resolve(block)? })?;
        let pending_tag = matches!(block, None | Some(BlockId::Number(BlockNumberOrTag::Pending)));
        if height == head && (sending || pending_tag) {
            return Ok((height, pending));
        }
        let h =
            self.node.db().header(height).map_err(internal)?.ok_or_else(|| server_err("header not found"))?;
        let mut params = self.node.next_params();
        params.number = h.height;
        params.timestamp = h.timestamp;
        params.gas_limit = h.gas_limit;
        params.base_fee = h.base_fee;
        params.beneficiary = Address::from(h.proposer.0);
        params.prevrandao = B256::from(h.parent_hash.0);
        Ok((height, vec![params]))
    }

    fn simulate(
        &self,
        req: &TransactionRequest,
        height: u64,
        params: &BlockParams,
        gas: u64,
        metered: bool,
    ) -> RpcResult<ExecutionResult> {
        let reader =
            self.node.state().reader(height).map_err(internal)?.with_block_hashes(self.node.recent_hashes());
        simulate(reader, params, self.call_env(req, gas), metered).map_err(|e| match e {
            prover::Error::InvalidTransaction { reason, .. } => server_err(invalid_call(&reason)),
            prover::Error::OverBudget(footprint) => over_budget(&footprint),
            other => internal(other),
        })
    }

    fn call(&self, req: TransactionRequest, block: Option<BlockId>) -> RpcResult<Bytes> {
        let gas = req.gas.unwrap_or(TX_GAS_CAP * 4);
        let (height, contexts) = self.contexts(block, false)?;
        let params = contexts.first().ok_or_else(|| internal("no block context"))?;
        match self.simulate(&req, height, params, gas, false)? {
            ExecutionResult::Success { output, .. } => Ok(output.into_data()),
            ExecutionResult::Revert { output, .. } => Err(reverted(&output)),
            ExecutionResult::Halt { reason, .. } => Err(halted(reason, gas)),
        }
    }

    /// The smallest gas limit with which the transaction succeeds in every
    /// block it may land in where it succeeds at all (see [`Self::contexts`];
    /// it must succeed in the likeliest, or the error is that one's). Gas
    /// can depend on the block: a contract that writes only when
    /// `block.timestamp` moved since its last write costs more in the next
    /// second than in this one.
    fn estimate_gas(&self, req: TransactionRequest, block: Option<BlockId>) -> RpcResult<U64> {
        let (height, contexts) = self.contexts(block, true)?;
        // never above what one transaction may ask (admission refuses more)
        let most = TX_GAS_CAP.min(contexts.first().map_or(TX_GAS_CAP, |p| p.gas_limit));
        let cap = req.gas.unwrap_or(most).min(most);
        let mut best: Option<u64> = None;
        for (i, params) in contexts.iter().enumerate() {
            let run = |gas: u64| self.simulate(&req, height, params, gas, true);
            let used = match run(cap) {
                Ok(ExecutionResult::Success { gas, .. }) => gas.tx_gas_used(),
                // only the likeliest block decides whether it fails, and how
                Err(_) | Ok(_) if i > 0 => continue,
                Err(e) => return Err(e),
                Ok(ExecutionResult::Revert { output, .. }) => return Err(reverted(&output)),
                Ok(ExecutionResult::Halt { reason, .. }) => return Err(halted(reason, cap)),
            };
            if let Some(b) = best
                && b >= used
                && run(b).is_ok_and(|r| r.is_success())
            {
                continue;
            }
            best = Some(smallest_success(best.unwrap_or(0).max(used.saturating_sub(1)), used, cap, |g| {
                Ok(run(g)?.is_success())
            })?);
        }
        let mut best = best.ok_or_else(|| internal("no block context"))?;
        // gas that depends on the gas left need not be monotone: what a later
        // block raised the figure to must still succeed in the likeliest
        let first = |g: u64| self.simulate(&req, height, &contexts[0], g, true);
        if !first(best)?.is_success() {
            best = smallest_success(best, best, cap, |g| Ok(first(g)?.is_success()))?;
        }
        Ok(U64::from(best))
    }

    fn body_txs(
        &self,
        height: u64,
        body: &StoredBody,
        base_fee: u64,
        block_hash: B256,
    ) -> RpcResult<Vec<Transaction>> {
        body.txs
            .iter()
            .zip(&body.senders)
            .enumerate()
            .map(|(i, (raw, sender))| {
                let env = TxEnvelope::decode_2718(&mut raw.as_ref()).map_err(internal)?;
                Ok(rpc_tx(env, *sender, Some((block_hash, height, i as u64, base_fee))))
            })
            .collect()
    }

    fn block(&self, height: u64, full: bool) -> RpcResult<Option<Block>> {
        let Some(StoredBlock { header: h, body, receipts }) =
            self.node.db().stored_block(height).map_err(internal)?
        else {
            return Ok(None);
        };
        let hash = B256::from(h.hash().0);
        let mut bloom = Bloom::default();
        for r in &receipts {
            for l in &r.logs {
                bloom.accrue_log(l);
            }
        }
        let inner = alloy_consensus::Header {
            parent_hash: B256::from(h.parent_hash.0),
            beneficiary: Address::from(h.proposer.0),
            state_root: B256::from(h.post_state_root.0),
            transactions_root: B256::from(h.items_root.0),
            receipts_root: B256::from(h.receipts_root.0),
            logs_bloom: bloom,
            number: h.height,
            gas_limit: h.gas_limit,
            gas_used: h.gas_used,
            timestamp: h.timestamp,
            mix_hash: B256::from(h.parent_hash.0),
            base_fee_per_gas: Some(h.base_fee),
            ..Default::default()
        };
        let transactions = if full {
            BlockTransactions::Full(self.body_txs(height, &body, h.base_fee, hash)?)
        } else {
            BlockTransactions::Hashes(body.hashes.clone())
        };
        let size = 600 + body.txs.iter().map(|t| t.len()).sum::<usize>();
        Ok(Some(Block {
            header: Header { hash, inner, total_difficulty: Some(U256::ZERO), size: Some(U256::from(size)) },
            uncles: vec![],
            transactions,
            withdrawals: None,
        }))
    }

    fn tx_by_hash(&self, hash: B256) -> RpcResult<Option<Transaction>> {
        if let Some((i, StoredBlock { header: h, body, .. })) =
            self.node.db().tx_block(&hash).map_err(internal)?
        {
            let i = i as usize;
            let env = TxEnvelope::decode_2718(&mut body.txs[i].as_ref()).map_err(internal)?;
            return Ok(Some(rpc_tx(
                env,
                body.senders[i],
                Some((B256::from(h.hash().0), h.height, i as u64, h.base_fee)),
            )));
        }
        Ok(self.node.pool().lock().get(&hash).map(|t| rpc_tx(t.envelope.clone(), t.sender, None)))
    }

    fn receipt(&self, hash: B256) -> RpcResult<Option<TransactionReceipt>> {
        // one snapshot: a revert and re-import between reads cannot pair
        // this transaction with another block at its old height
        let Some((i, block)) = self.node.db().tx_block(&hash).map_err(internal)? else {
            return Ok(None);
        };
        receipt_in(&block, i as usize).map(Some)
    }

    /// `eth_getBlockReceipts`: every transaction's receipt in the block at `height`.
    fn block_receipts(&self, height: u64) -> RpcResult<Option<Vec<TransactionReceipt>>> {
        if height > self.head_height() {
            return Ok(None);
        }
        let Some(block) = self.node.db().stored_block(height).map_err(internal)? else { return Ok(None) };
        (0..block.body.txs.len()).map(|i| receipt_in(&block, i)).collect::<RpcResult<Vec<_>>>().map(Some)
    }

    fn logs(&self, filter: Filter) -> RpcResult<Vec<RpcLog>> {
        let head = self.head_height();
        let db = self.node.db();
        let tag = |b: Option<BlockNumberOrTag>, default: u64| -> RpcResult<u64> {
            Ok(b.map_or(default, |t| self.tag_height(t)))
        };
        let (from, to) = match filter.block_option {
            FilterBlockOption::AtBlockHash(h) => {
                let n = db
                    .height_of(&bridge::Hash(h.0))
                    .map_err(internal)?
                    .ok_or_else(|| server_err("unknown block"))?;
                (n, n)
            }
            FilterBlockOption::Range { from_block, to_block } => {
                (tag(from_block, head)?, tag(to_block, head)?)
            }
        };
        let to = to.min(head);
        if from > to {
            return Ok(vec![]);
        }
        if to - from >= MAX_LOG_RANGE {
            return Err(server_err(format!("query exceeds max block range {MAX_LOG_RANGE}")));
        }
        let mut out = Vec::new();
        for height in from..=to {
            let Some(StoredBlock { header: h, receipts, .. }) = db.stored_block(height).map_err(internal)?
            else {
                continue;
            };
            let block_hash = B256::from(h.hash().0);
            let mut log_index = 0u64;
            for (i, r) in receipts.iter().enumerate() {
                for l in &r.logs {
                    if filter.matches(l) {
                        let at = LogPlace {
                            block_hash,
                            height,
                            timestamp: h.timestamp,
                            tx_hash: r.tx_hash,
                            tx_index: i as u64,
                        };
                        out.push(at.log(l, log_index));
                    }
                    log_index += 1;
                }
            }
        }
        Ok(out)
    }

    fn fee_history(
        &self,
        count: u64,
        newest: BlockNumberOrTag,
        percentiles: Option<Vec<f64>>,
    ) -> RpcResult<FeeHistory> {
        let head = self.head_height();
        let newest = self.tag_height(newest).min(head);
        let count = count.clamp(1, 1024).min(newest + 1);
        let oldest = newest + 1 - count;
        let db = self.node.db();
        let mut fh = FeeHistory { oldest_block: oldest, ..Default::default() };
        let mut rewards = Vec::new();
        for height in oldest..=newest {
            let h = db.header(height).map_err(internal)?.ok_or_else(|| server_err("header not found"))?;
            fh.base_fee_per_gas.push(h.base_fee as u128);
            fh.gas_used_ratio.push(h.gas_used as f64 / h.gas_limit.max(1) as f64);
            if let Some(ps) = &percentiles {
                let body =
                    db.body(height).map_err(internal)?.unwrap_or(StoredBody::empty(Default::default()));
                let mut tips: Vec<u128> = body
                    .txs
                    .iter()
                    .filter_map(|raw| TxEnvelope::decode_2718(&mut raw.as_ref()).ok())
                    .map(|t| t.effective_tip_per_gas(h.base_fee).unwrap_or(0))
                    .collect();
                tips.sort_unstable();
                rewards.push(
                    ps.iter()
                        .map(|p| {
                            if tips.is_empty() {
                                return 0;
                            }
                            let idx = ((p / 100.0) * (tips.len() - 1) as f64).round() as usize;
                            tips[idx.min(tips.len() - 1)]
                        })
                        .collect(),
                );
            }
        }
        fh.base_fee_per_gas.push(if newest == head {
            self.node.next_base_fee() as u128
        } else {
            db.header(newest + 1).map_err(internal)?.map_or(0, |h| h.base_fee as u128)
        });
        fh.reward = percentiles.map(|_| rewards);
        Ok(fh)
    }

    fn get_proof(
        &self,
        address: Address,
        slots: Vec<U256>,
        block: Option<BlockId>,
    ) -> RpcResult<ProofResponse> {
        if slots.len() > 1024 {
            return Err(params_err("at most 1024 storage slots per proof request"));
        }
        let height = self.state_version(self.resolve(block)?)?;
        let state = self.node.state();
        let root = state.root(height).map_err(internal)?;
        let account = state.prove(StateKey::Account(address), height).map_err(internal)?;
        let storage = slots
            .into_iter()
            .map(|s| state.prove(StateKey::Storage(address, s), height))
            .collect::<prover::Result<Vec<_>>>()
            .map_err(internal)?;
        Ok(ProofResponse { block_number: height, state_root: root, account, storage })
    }
}

/// `optishard_getProof`'s answer: proofs against the state root of a block,
/// checked with [`prover::StateProof::verify`].
#[derive(Clone, Debug, Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProofResponse {
    /// The block whose state is proven.
    pub block_number: u64,
    /// That block's `post_state_root`.
    pub state_root: bridge::Hash,
    /// Proof of the account (or of its absence).
    pub account: prover::StateProof,
    /// Proofs of the requested storage slots.
    pub storage: Vec<prover::StateProof>,
}

/// Where a log was emitted, as `eth_getLogs` and receipts report it.
struct LogPlace {
    block_hash: B256,
    height: u64,
    timestamp: u64,
    tx_hash: B256,
    tx_index: u64,
}

impl LogPlace {
    fn log(&self, l: &alloy_primitives::Log, log_index: u64) -> RpcLog {
        RpcLog {
            inner: l.clone(),
            block_hash: Some(self.block_hash),
            block_number: Some(self.height),
            block_timestamp: Some(self.timestamp),
            transaction_hash: Some(self.tx_hash),
            transaction_index: Some(self.tx_index),
            log_index: Some(log_index),
            removed: false,
        }
    }
}

/// The receipt of a block's `i`-th transaction.
fn receipt_in(block: &StoredBlock, i: usize) -> RpcResult<TransactionReceipt> {
    let StoredBlock { header: h, body, receipts } = block;
    let block_hash = B256::from(h.hash().0);
    let env = TxEnvelope::decode_2718(&mut body.txs[i].as_ref()).map_err(internal)?;
    // the block's inbox messages come first among its receipts
    let ri = body.receipt_index(i);
    let cumulative: u64 = receipts[..=ri].iter().map(|r| r.gas_used).sum();
    let log_start: usize = receipts[..ri].iter().map(|r| r.logs.len()).sum();
    Ok(rpc_receipt(
        &receipts[ri],
        &env,
        body.senders[i],
        block_hash,
        h.height,
        i as u64,
        cumulative,
        log_start,
        h.base_fee,
        h.timestamp,
    ))
}

fn rpc_tx(env: TxEnvelope, sender: Address, included: Option<(B256, u64, u64, u64)>) -> Transaction {
    let effective = included.map(|(_, _, _, base_fee)| env.effective_gas_price(Some(base_fee)));
    Transaction {
        inner: alloy_consensus::transaction::Recovered::new_unchecked(env, sender),
        block_hash: included.map(|i| i.0),
        block_number: included.map(|i| i.1),
        transaction_index: included.map(|i| i.2),
        effective_gas_price: effective,
        block_timestamp: None,
    }
}

#[allow(clippy::too_many_arguments)]
fn rpc_receipt(
    r: &prover::Receipt,
    env: &TxEnvelope,
    from: Address,
    block_hash: B256,
    height: u64,
    index: u64,
    cumulative: u64,
    log_start: usize,
    base_fee: u64,
    timestamp: u64,
) -> TransactionReceipt {
    let logs: Vec<RpcLog> = r
        .logs
        .iter()
        .enumerate()
        .map(|(j, l)| {
            let at = LogPlace { block_hash, height, timestamp, tx_hash: r.tx_hash, tx_index: index };
            at.log(l, (log_start + j) as u64)
        })
        .collect();
    let mut bloom = Bloom::default();
    for l in &r.logs {
        bloom.accrue_log(l);
    }
    let receipt = ReceiptWithBloom {
        receipt: EthReceipt { status: Eip658Value::Eip658(r.success), cumulative_gas_used: cumulative, logs },
        logs_bloom: bloom,
    };
    let inner = match r.tx_type {
        1 => ReceiptEnvelope::Eip2930(receipt),
        2 => ReceiptEnvelope::Eip1559(receipt),
        _ => ReceiptEnvelope::Legacy(receipt),
    };
    TransactionReceipt {
        inner,
        transaction_hash: r.tx_hash,
        transaction_index: Some(index),
        block_hash: Some(block_hash),
        block_number: Some(height),
        gas_used: r.gas_used,
        effective_gas_price: env.effective_gas_price(Some(base_fee)),
        blob_gas_used: None,
        blob_gas_price: None,
        from,
        to: env.to(),
        contract_address: r.contract_address,
    }
}

fn one<T: serde::de::DeserializeOwned>(p: Params<'_>) -> RpcResult<T> {
    p.one().map_err(parse_err)
}

fn seq2<A, B>(p: Params<'_>) -> RpcResult<(A, Option<B>)>
where
    A: serde::de::DeserializeOwned,
    B: serde::de::DeserializeOwned,
{
    let mut s = p.sequence();
    let a = s.next::<A>().map_err(parse_err)?;
    let b = s.optional_next::<B>().map_err(parse_err)?;
    Ok((a, b))
}

fn module(
    node: Arc<ShardNode>,
    status: Option<Arc<parking_lot::RwLock<ValidatorStatus>>>,
) -> Result<RpcModule<Rpc>> {
    let mut m = RpcModule::new(Rpc { node, status });
    let reg = |e: jsonrpsee::core::RegisterMethodError| Error::Rpc(e.to_string());

    m.register_method("eth_chainId", |_, rpc, _| -> RpcResult<U64> {
        Ok(U64::from(rpc.node.config().chain_id()))
    })
    .map_err(reg)?;
    m.register_method("net_version", |_, rpc, _| rpc.node.config().chain_id().to_string()).map_err(reg)?;
    m.register_method("web3_clientVersion", |_, _, _| format!("optishard/v{}", env!("CARGO_PKG_VERSION")))
        .map_err(reg)?;
    m.register_method("eth_blockNumber", |_, rpc, _| -> RpcResult<U64> { Ok(U64::from(rpc.head_height())) })
        .map_err(reg)?;
    m.register_method("eth_gasPrice", |_, rpc, _| -> RpcResult<U64> {
        Ok(U64::from(rpc.node.next_base_fee() + PRIORITY_FEE))
    })
    .map_err(reg)?;
    m.register_method("eth_maxPriorityFeePerGas", |_, _, _| -> RpcResult<U64> {
        Ok(U64::from(PRIORITY_FEE))
    })
    .map_err(reg)?;
    m.register_method("eth_getBalance", |p, rpc, _| -> RpcResult<U256> {
        let (a, b) = seq2::<Address, BlockId>(p)?;
        Ok(rpc.account(a, b)?.map_or(U256::ZERO, |x| x.balance))
    })
    .map_err(reg)?;
    m.register_method("eth_getTransactionCount", |p, rpc, _| -> RpcResult<U64> {
        let (a, b) = seq2::<Address, BlockId>(p)?;
        let pending = matches!(b, Some(BlockId::Number(BlockNumberOrTag::Pending)));
        let n = rpc.account(a, b)?.map_or(0, |x| x.nonce);
        Ok(U64::from(if pending { rpc.node.pool().lock().pending_nonce(&a, n) } else { n }))
    })
    .map_err(reg)?;
    m.register_method("eth_getCode", |p, rpc, _| -> RpcResult<Bytes> {
        let (a, b) = seq2::<Address, BlockId>(p)?;
        let v = rpc.state_version(rpc.resolve(b)?)?;
        let Some(acct) = rpc.node.state().account(a, v).map_err(internal)? else { return Ok(Bytes::new()) };
        if acct.code_hash == revm::primitives::KECCAK_EMPTY {
            return Ok(Bytes::new());
        }
        Ok(rpc.node.state().code(acct.code_hash, v).map_err(internal)?.unwrap_or_default())
    })
    .map_err(reg)?;
    m.register_method("eth_getStorageAt", |p, rpc, _| -> RpcResult<B256> {
        let mut s = p.sequence();
        let a: Address = s.next().map_err(parse_err)?;
        let slot: U256 = s.next().map_err(parse_err)?;
        let b: Option<BlockId> = s.optional_next().map_err(parse_err)?;
        let v = rpc.state_version(rpc.resolve(b)?)?;
        Ok(B256::from(rpc.node.state().storage(a, slot, v).map_err(internal)?))
    })
    .map_err(reg)?;
    m.register_method("eth_call", |p, rpc, _| {
        let (req, b) = seq2::<TransactionRequest, BlockId>(p)?;
        rpc.call(req, b)
    })
    .map_err(reg)?;
    m.register_method("eth_estimateGas", |p, rpc, _| {
        let (req, b) = seq2::<TransactionRequest, BlockId>(p)?;
        rpc.estimate_gas(req, b)
    })
    .map_err(reg)?;
    m.register_method("eth_sendRawTransaction", |p, rpc, _| rpc.send_raw(one::<Bytes>(p)?)).map_err(reg)?;
    m.register_method("eth_getTransactionByHash", |p, rpc, _| rpc.tx_by_hash(one::<B256>(p)?))
        .map_err(reg)?;
    m.register_method("eth_getTransactionReceipt", |p, rpc, _| rpc.receipt(one::<B256>(p)?)).map_err(reg)?;
    m.register_method("eth_getBlockReceipts", |p, rpc, _| -> RpcResult<Option<Vec<TransactionReceipt>>> {
        let height = match one::<BlockId>(p)? {
            BlockId::Number(tag) => rpc.tag_height(tag),
            BlockId::Hash(h) => {
                match rpc.node.db().height_of(&bridge::Hash(h.block_hash.0)).map_err(internal)? {
                    Some(n) => n,
                    None => return Ok(None),
                }
            }
        };
        rpc.block_receipts(height)
    })
    .map_err(reg)?;
    m.register_method("eth_getBlockByNumber", |p, rpc, _| -> RpcResult<Option<Block>> {
        let (tag, full) = seq2::<BlockNumberOrTag, bool>(p)?;
        let head = rpc.head_height();
        let n = match tag {
            BlockNumberOrTag::Number(n) => n,
            BlockNumberOrTag::Earliest => 0,
            _ => head,
        };
        if n > head {
            return Ok(None);
        }
        rpc.block(n, full.unwrap_or(false))
    })
    .map_err(reg)?;
    m.register_method("eth_getBlockByHash", |p, rpc, _| -> RpcResult<Option<Block>> {
        let (h, full) = seq2::<B256, bool>(p)?;
        match rpc.node.db().height_of(&bridge::Hash(h.0)).map_err(internal)? {
            None => Ok(None),
            Some(n) => rpc.block(n, full.unwrap_or(false)),
        }
    })
    .map_err(reg)?;
    m.register_method("eth_getLogs", |p, rpc, _| rpc.logs(one::<Filter>(p)?)).map_err(reg)?;
    m.register_method("eth_feeHistory", |p, rpc, _| {
        let mut s = p.sequence();
        let count: U64 = s.next().map_err(parse_err)?;
        let newest: BlockNumberOrTag = s.next().map_err(parse_err)?;
        let pct: Option<Vec<f64>> = s.optional_next().map_err(parse_err)?;
        rpc.fee_history(count.to::<u64>(), newest, pct)
    })
    .map_err(reg)?;
    m.register_method("optishard_getProof", |p, rpc, _| {
        let mut s = p.sequence();
        let a: Address = s.next().map_err(parse_err)?;
        let slots: Vec<U256> = s.optional_next().map_err(parse_err)?.unwrap_or_default();
        let b: Option<BlockId> = s.optional_next().map_err(parse_err)?;
        rpc.get_proof(a, slots, b)
    })
    .map_err(reg)?;
    m.register_method("optishard_shardInfo", |_, rpc, _| -> RpcResult<ShardInfo> {
        let head = rpc.node.head();
        Ok(ShardInfo {
            shard: rpc.node.config().shard,
            chain_id: rpc.node.config().chain_id(),
            head: HeadInfo {
                height: head.header.height,
                hash: head.hash,
                slot: head.header.beacon_slot,
                state_root: head.header.post_state_root,
            },
            mempool: rpc.node.pool().lock().len(),
            mismatches: rpc.node.mismatches().len(),
            validator: rpc.status.as_ref().map(|s| s.read().clone()),
        })
    })
    .map_err(reg)?;
    m.register_method("optishard_mismatches", |_, rpc, _| -> RpcResult<Vec<crate::Mismatch>> {
        Ok(rpc.node.mismatches())
    })
    .map_err(reg)?;
    // a message's status as this node sees it (the source shard's nodes
    // know `pending`/`committed`, the destination's `executed`/`finalized`),
    // with its source and destination blocks, its receipt and refund
    // a transaction's fate here: included (with its block), pending in the
    // pool, reverted (its block was taken away; it is back in the pool or
    // dropped), or unknown
    m.register_method("optishard_getTransactionStatus", |p, rpc, _| -> RpcResult<serde_json::Value> {
        let hash: B256 = one(p)?;
        let reverted = rpc.node.reverted_from(&hash);
        if let Some(loc) = rpc.node.db().tx_location(&hash).map_err(internal)? {
            return Ok(
                serde_json::json!({"status": "included", "height": loc.height, "revertedFrom": reverted}),
            );
        }
        let pending = rpc.node.pool().lock().get(&hash).is_some();
        let status = match (pending, reverted) {
            (true, Some(_)) => "reverted",
            (true, None) => "pending",
            (false, Some(_)) => "dropped",
            (false, None) => "unknown",
        };
        Ok(serde_json::json!({"status": status, "revertedFrom": reverted}))
    })
    .map_err(reg)?;
    // the messages a block consumed, in order: id, source shard, channel
    // nonce, source height (what a checker needs for exactly-once delivery)
    m.register_method("optishard_getBlockInbox", |p, rpc, _| -> RpcResult<Option<Vec<serde_json::Value>>> {
        let height = rpc.tag_height(one::<BlockNumberOrTag>(p)?);
        if height > rpc.head_height() {
            return Ok(None);
        }
        let Some(block) = rpc.node.db().stored_block(height).map_err(internal)? else { return Ok(None) };
        Ok(Some(
            block
                .body
                .inbox
                .iter()
                .map(|e| {
                    serde_json::json!({
                        "id": e.message.id(),
                        "src": e.message.src.0,
                        "nonce": e.message.nonce,
                        "sourceHeight": e.height,
                    })
                })
                .collect(),
        ))
    })
    .map_err(reg)?;
    m.register_method("optishard_getMessage", |p, rpc, _| -> RpcResult<Option<serde_json::Value>> {
        let id: B256 = one(p)?;
        rpc.message(bridge::Hash(id.0))
    })
    .map_err(reg)?;
    // a message this shard emitted, with its proof against the source
    // block's outbox_root (what a destination checks)
    m.register_method("optishard_getMessageProof", |p, rpc, _| -> RpcResult<Option<serde_json::Value>> {
        let id: B256 = one(p)?;
        let Some(entry) = rpc.node.sent_message(&bridge::Hash(id.0)).map_err(internal)? else {
            return Ok(None);
        };
        let header = rpc
            .node
            .db()
            .header(entry.height)
            .map_err(internal)?
            .ok_or_else(|| server_err("header not found"))?;
        Ok(Some(serde_json::json!({
            "message": entry.message,
            "height": entry.height,
            "blockHash": header.hash(),
            "outboxRoot": header.outbox_root,
            "proof": entry.proof,
            "encoded": Bytes::from(bridge::Encode::encode(&entry)),
        })))
    })
    .map_err(reg)?;
    // this shard's totals at a block (default: the head): balances, value
    // sent out and received, refunds, fees burned; `holds` checks them
    m.register_method("optishard_supply", |p, rpc, _| -> RpcResult<serde_json::Value> {
        let b: Option<BlockId> = p.sequence().optional_next().map_err(parse_err)?;
        let height = rpc.resolve(b)?;
        let s = rpc.node.supply(height).map_err(internal)?.ok_or_else(|| server_err("header not found"))?;
        let mut v = serde_json::to_value(s).map_err(internal)?;
        v["holds"] = serde_json::Value::Bool(s.holds());
        Ok(v)
    })
    .map_err(reg)?;
    // the kept evidence of one mismatch, in the canonical encoding (hex):
    // what a challenger opens a dispute from
    m.register_method("optishard_getMismatchEvidence", |p, rpc, _| -> RpcResult<Option<Bytes>> {
        let hash: B256 = one(p)?;
        let ev = rpc.node.mismatch_evidence(&bridge::Hash(hash.0)).map_err(internal)?;
        Ok(ev.map(|e| Bytes::from(bridge::Encode::encode(&e))))
    })
    .map_err(reg)?;
    Ok(m)
}

/// What the admin methods reach in a running validator (`admin_rpc`).
pub(crate) struct Admin {
    /// Its p2p network (links).
    pub net: net::P2pNetwork,
    /// The validator's event loop, told to turn its challenger on or off.
    pub challenger: tokio::sync::mpsc::UnboundedSender<bool>,
}

impl Admin {
    /// `admin_setFault(name | null, rate_percent)`, `admin_setChallenger(bool)`
    /// and the link methods every node shares.
    fn register(self, m: &mut RpcModule<Rpc>) -> Result<()> {
        let reg = |e: jsonrpsee::core::RegisterMethodError| Error::Rpc(e.to_string());
        m.register_method("admin_setFault", |p, rpc, _| -> RpcResult<bool> {
            let (name, rate): (Option<String>, Option<u8>) = p.parse()?;
            let fault = match name {
                None => None,
                Some(n) => Some(crate::Fault::parse(&n).ok_or_else(|| {
                    errors::rpc_err(
                        errors::code::INVALID_PARAMS,
                        format!("unknown fault {n:?}: one of {}", crate::Fault::names().join(", ")),
                    )
                })?),
            };
            let rate = rate.unwrap_or(100);
            if rate > 100 {
                return Err(errors::rpc_err(errors::code::INVALID_PARAMS, "rate_percent is 0..=100"));
            }
            rpc.node.set_fault(fault, rate);
            Ok(true)
        })
        .map_err(reg)?;
        let tx = self.challenger;
        m.register_method("admin_setChallenger", move |p, _, _| -> RpcResult<bool> {
            let (on,): (bool,) = p.parse()?;
            tx.send(on).map_err(|_| errors::server_err("the validator has stopped"))?;
            Ok(true)
        })
        .map_err(reg)?;
        net::register_link_admin(m, self.net).map_err(reg)
    }
}

/// Starts the JSON-RPC server for `node`; returns the bound address and
/// the request counters.
pub(crate) async fn serve(
    node: Arc<ShardNode>,
    status: Option<Arc<parking_lot::RwLock<ValidatorStatus>>>,
    admin: Option<Admin>,
) -> Result<(SocketAddr, ServerHandle, net::RpcMetrics)> {
    let cfg = node.config().clone();
    let server_cfg = ServerConfig::builder()
        .max_request_body_size(cfg.rpc_max_request_bytes)
        .max_response_body_size(cfg.rpc_max_request_bytes.max(64 << 20))
        .set_batch_request_config(BatchRequestConfig::Limit(cfg.rpc_max_batch))
        .build();
    let mut module = module(node, status)?;
    if let Some(admin) = admin {
        admin.register(&mut module)?;
    }
    let metrics = net::RpcMetrics::new(module.method_names().map(String::from));
    let server = Server::builder()
        .set_config(server_cfg)
        .set_rpc_middleware(metrics.layer())
        .build(cfg.rpc_addr)
        .await
        .map_err(|e| Error::Rpc(format!("bind {}: {e}", cfg.rpc_addr)))?;
    let addr = server.local_addr().map_err(|e| Error::Rpc(e.to_string()))?;
    let handle = server.start(module);
    Ok((addr, handle, metrics))
}
