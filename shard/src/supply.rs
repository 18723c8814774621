//! Supply accounting: where every wei of a shard is, block by block, and
//! the conservation audit across shards.
//!
//! Per shard, at every height: `balances + fees_burned + sent_out =
//! genesis + received`. `balances` is a running sum kept from the state's
//! own account writes (each changed account's old balance out, new balance
//! in, as execution wrote them: `prover::BalanceMoves`), not derived from
//! the other terms, so the identity is a real check of execution: a block
//! that minted or lost value breaks it. Across shards, value in flight is
//! what was sent and not yet received: `Σ balances + in flight = Σ genesis
//! − Σ fees burned`.

use alloy_primitives::U256;
use bridge::{Decode, DecodeError, Encode, MessageKind};
use prover::{Execution, Item};
use serde::{Deserialize, Serialize};

/// A shard's totals at one height (the `optishard_supply` RPC).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Supply {
    /// The height.
    pub height: u64,
    /// Wei funded at genesis.
    pub genesis: U256,
    /// Sum of every account's balance.
    pub balances: U256,
    /// Value of every message this shard emitted (sends and refunds).
    pub sent_out: U256,
    /// Value of every message this shard consumed (delivered or failed).
    pub received: U256,
    /// Of `sent_out`: refunds of messages that failed here.
    pub refunds_sent: U256,
    /// Base fees burned (EIP-1559).
    pub fees_burned: U256,
}

impl Supply {
    /// Genesis totals: every funded balance.
    pub fn genesis(funded: U256) -> Self {
        Supply { genesis: funded, balances: funded, ..Default::default() }
    }

    /// Whether `balances + fees_burned + sent_out = genesis + received`.
    pub fn holds(&self) -> bool {
        self.balances.checked_add(self.fees_burned).and_then(|x| x.checked_add(self.sent_out))
            == self.genesis.checked_add(self.received)
    }

    /// The totals after a block executed with `exec` at `base_fee` on top of
    /// these.
    pub fn next(&self, height: u64, exec: &Execution, base_fee: u64) -> Supply {
        let mut s = Supply { height, ..*self };
        let moves = exec.balance_moves;
        s.balances = s.balances.wrapping_add(moves.added).wrapping_sub(moves.removed);
        for (item, outcome) in exec.items.iter().zip(&exec.outcomes) {
            match item {
                Item::Tx(_) => {
                    s.fees_burned += U256::from(outcome.receipt.gas_used) * U256::from(base_fee);
                }
                Item::Message(m) => s.received += m.value,
            }
            for m in &outcome.messages {
                s.sent_out += m.value;
                if matches!(m.kind, MessageKind::Refund { .. }) {
                    s.refunds_sent += m.value;
                }
            }
        }
        s
    }
}

impl Encode for Supply {
    fn encode_to(&self, out: &mut Vec<u8>) {
        self.height.encode_to(out);
        for v in
            [self.genesis, self.balances, self.sent_out, self.received, self.refunds_sent, self.fees_burned]
        {
            v.to_be_bytes::<32>().encode_to(out);
        }
    }
}

impl Decode for Supply {
    fn decode(input: &mut &[u8]) -> std::result::Result<Self, DecodeError> {
        let height = u64::decode(input)?;
        let mut v = [U256::ZERO; 6];
        for x in &mut v {
            *x = U256::from_be_bytes(<[u8; 32]>::decode(input)?);
        }
        let [genesis, balances, sent_out, received, refunds_sent, fees_burned] = v;
        Ok(Supply { height, genesis, balances, sent_out, received, refunds_sent, fees_burned })
    }
}

/// The conservation audit of a network: every shard's totals at one point
/// (e.g. the beacon's accepted heads at one slot).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Audit {
    /// Each shard's totals.
    pub shards: Vec<Supply>,
    /// Σ genesis.
    pub genesis: U256,
    /// Σ balances.
    pub balances: U256,
    /// Σ fees burned.
    pub fees_burned: U256,
    /// Sent and not yet received: Σ sent out − Σ received.
    pub in_flight: U256,
    /// Every shard's own identity holds.
    pub shards_hold: bool,
    /// `Σ balances + in flight = Σ genesis − Σ fees burned` (and nothing
    /// was received that was not sent).
    pub holds: bool,
}

impl Audit {
    /// Audits `shards`' totals.
    pub fn of(shards: Vec<Supply>) -> Audit {
        let sum = |f: fn(&Supply) -> U256| shards.iter().fold(U256::ZERO, |a, s| a + f(s));
        let (genesis, balances, fees) = (sum(|s| s.genesis), sum(|s| s.balances), sum(|s| s.fees_burned));
        let (sent, received) = (sum(|s| s.sent_out), sum(|s| s.received));
        let in_flight = sent.saturating_sub(received);
        let shards_hold = shards.iter().all(Supply::holds);
        let holds = shards_hold && received <= sent && balances + in_flight + fees == genesis;
        Audit { shards, genesis, balances, fees_burned: fees, in_flight, shards_hold, holds }
    }
}
