//! Fault injection (the byzantine modes a testnet validator can be told to
//! play) and the memory of reverted items the RPC shows as `reverted`.

use std::collections::HashMap;

use alloy_primitives::{Address, B256, U256};
use bridge::{Hash, Message, ShardHeader, ShardId};
use prover::{Execution, Item};
use serde::{Deserialize, Serialize};

use crate::{Result, ShardNode};

/// What a proposal's fault draws are seeded with: its slot and proposer.
pub(crate) fn draw_seed(slot: u64, proposer: &Address) -> Vec<u8> {
    [&slot.to_be_bytes()[..], proposer.as_slice()].concat()
}

impl ShardNode {
    /// Whether the fault `f` is played on the chance named by `seed`
    /// (deterministic: the same seed always draws the same).
    fn plays(&self, f: Fault, seed: &[u8]) -> bool {
        match self.fault() {
            Some((g, rate)) if g == f => {
                let draw = bridge::hash_domain(b"optishard.fault_draw", &[seed]).0[0];
                u32::from(draw) * 100 < u32::from(rate) * 256
            }
            _ => false,
        }
    }

    /// `fabricated-message`: a message in the outbox that no execution
    /// emitted, minting 1 ETH on the next shard from nothing (the block's
    /// roots and trace agree with it; re-execution does not).
    pub(crate) fn inject_outbox_fault(
        &self,
        draw: &[u8],
        slot: u64,
        height: u64,
        exec: &mut Execution,
    ) -> Result<()> {
        let cfg = self.config();
        if slot == 0
            || cfg.shards < 2
            || exec.outcomes.is_empty()
            || !self.plays(Fault::FabricatedMessage, draw)
        {
            return Ok(());
        }
        let dst = ShardId((cfg.shard.0 + 1) % cfg.shards);
        let sent = exec.outbox().iter().filter(|m| m.dst == dst).count() as u64;
        let counter = self.state().storage(bridge::BRIDGE_ADDRESS, prover::channel_slot(dst), height)?;
        let fabricated = Message {
            src: cfg.shard,
            dst,
            nonce: u64::try_from(counter).unwrap_or(u64::MAX).saturating_add(sent),
            sender: Address::repeat_byte(0xfa),
            to: FABRICATED_RECIPIENT,
            value: U256::from(1_000_000_000_000_000_000u128),
            gas_limit: bridge::DEFAULT_MESSAGE_GAS,
            data: vec![],
            kind: bridge::MessageKind::Call,
        };
        if let Some(last) = exec.outcomes.last_mut() {
            last.messages.push(fabricated);
        }
        Ok(())
    }

    /// `wrong-state-root` and `wrong-receipt`: coherent lies in the header
    /// (the trace's last commitment agrees with the lie), which only
    /// re-execution can catch.
    pub(crate) fn inject_header_fault(
        &self,
        draw: &[u8],
        slot: u64,
        exec: &Execution,
        post_state_root: &Hash,
        header: &mut ShardHeader,
    ) {
        if slot == 0 {
            return;
        }
        if self.plays(Fault::WrongStateRoot, draw) {
            header.post_state_root = bridge::hash_domain(b"optishard.fault", &[&post_state_root.0]);
            header.trace_root = header.last_commitment().hash();
        }
        if !exec.outcomes.is_empty() && self.plays(Fault::WrongReceipt, draw) {
            // one receipt altered: the last inbox message's (a wrong receipt
            // for a message from another shard), else the last item's
            let mut trace = bridge::TraceState::start();
            let target = exec
                .items
                .iter()
                .rposition(|i| matches!(i, Item::Message(_)))
                .unwrap_or(exec.outcomes.len() - 1);
            for (i, o) in exec.outcomes.iter().enumerate() {
                let mut receipt = o.receipt_hash;
                if i == target {
                    receipt = bridge::hash_domain(b"optishard.fault_receipt", &[&receipt.0]);
                }
                trace.push(o.messages.iter().map(Message::id), &receipt, o.receipt.gas_used);
            }
            header.receipts_root = trace.receipts.root();
            header.trace_root = header.last_commitment().hash();
        }
    }
}

/// Where a reverted transaction or message had been.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RevertedFrom {
    /// The height of the reverted block.
    pub height: u64,
    /// Its hash.
    pub block_hash: Hash,
    /// `tx`, `consumed` (an inbox message) or `sent` (an outbox message).
    pub role: &'static str,
}

impl RevertedFrom {
    const ROLES: [&'static str; 3] = ["tx", "consumed", "sent"];

    /// The role's byte on disk.
    pub(crate) fn role_code(role: &str) -> u8 {
        Self::ROLES.iter().position(|r| *r == role).unwrap_or(0) as u8
    }

    /// The role of a byte on disk.
    pub(crate) fn role_of(code: u8) -> Option<&'static str> {
        Self::ROLES.get(code as usize).copied()
    }
}

/// Recent reverted items, bounded (oldest evicted first).
#[derive(Default)]
pub(crate) struct Reverted {
    pub(crate) by_id: HashMap<B256, RevertedFrom>,
    order: std::collections::VecDeque<B256>,
}

/// Reverted items remembered for the RPC (in memory and on disk).
pub(crate) const KEPT_REVERTED: usize = 65_536;

impl Reverted {
    pub(crate) fn insert(&mut self, id: B256, from: RevertedFrom) {
        if self.by_id.insert(id, from).is_none() {
            self.order.push_back(id);
        }
        while self.order.len() > KEPT_REVERTED {
            if let Some(old) = self.order.pop_front() {
                self.by_id.remove(&old);
            }
        }
    }
}

/// A byzantine behaviour a validator can be told to play (fault injection
/// for testnets and tests).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Fault {
    /// A block it proposes claims a wrong post-state root (with a trace
    /// root that agrees with the lie).
    WrongStateRoot,
    /// A block it proposes claims a wrong receipts root (the receipt of its
    /// last inbox message altered, else its last item's), its trace root
    /// agreeing.
    WrongReceipt,
    /// It stops answering the games against its headers.
    SilentDefender,
    /// Its challenger disputes honest headers of its shard.
    GriefingChallenger,
    /// A block it proposes carries an outbox message no execution emitted
    /// (1 ETH to [`FABRICATED_RECIPIENT`] on the next shard, from nothing).
    FabricatedMessage,
    /// It takes the defence over from every overdue proposer of its shard
    /// and posts commitments no execution gives (trying to lose an honest
    /// header's game for its proposer).
    LyingStandIn,
}

/// Who a `fabricated-message` fault pays.
pub const FABRICATED_RECIPIENT: Address = Address::repeat_byte(0xfb);

impl Fault {
    /// The name the CLI and configs use.
    pub fn name(self) -> &'static str {
        match self {
            Fault::WrongStateRoot => "wrong-state-root",
            Fault::WrongReceipt => "wrong-receipt",
            Fault::SilentDefender => "silent-defender",
            Fault::GriefingChallenger => "griefing-challenger",
            Fault::FabricatedMessage => "fabricated-message",
            Fault::LyingStandIn => "lying-stand-in",
        }
    }

    /// Parses a CLI name.
    pub fn parse(name: &str) -> Option<Fault> {
        Fault::ALL.into_iter().find(|f| f.name() == name)
    }

    /// Every fault.
    pub const ALL: [Fault; 6] = [
        Fault::WrongStateRoot,
        Fault::WrongReceipt,
        Fault::SilentDefender,
        Fault::GriefingChallenger,
        Fault::FabricatedMessage,
        Fault::LyingStandIn,
    ];

    /// Every fault's name.
    pub fn names() -> Vec<&'static str> {
        Fault::ALL.iter().map(|f| f.name()).collect()
    }
}
