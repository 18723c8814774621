//! `beacon` — the beacon node: a slot clock, beacon blocks in rocksdb, the
//! validator registry with bonds from genesis, the deterministic proposer
//! schedule, and the rule for shard headers: accepted only when signed by
//! the slot's scheduled proposer and extending the shard's accepted chain.
//!
//! It also referees fraud proofs: bonded parties' dispute moves
//! ([`BeaconChain::submit_move`]), k-section games on chess clocks, the
//! single step re-executed with `prover`, slashing, and the invalidation of
//! a proven header, its descendants and what consumed its messages.
//!
//! Where to start: [`BeaconChain::submit`] and [`BeaconChain::seal`] are the
//! rules; [`BeaconService`] reacts to the network and the clock; [`start`]
//! runs a node process (p2p, JSON-RPC, metrics).

mod chain;
mod dispute;
mod error;
mod node;
mod referee;
mod resolve;
mod rpc;
mod store;

pub use chain::{
    BeaconChain, DependsOn, HeaderStatus, MAX_BEACON_BLOCK_BYTES, MAX_PENDING, MAX_PENDING_BYTES, Rejection,
    RejectionRecord, Submitted,
};
pub use dispute::{
    BondMove, GameLog, MAX_MOVE_BYTES_PER_BLOCK, MAX_MOVE_BYTES_PER_PARTY, MAX_MOVES_PER_PARTY,
    MAX_OPEN_GAMES, MoveLog, MoveRejection, StepStats, outcome_label,
};
pub use error::{Error, Result};
pub use node::{BeaconConfig, BeaconHandle, BeaconMetrics, BeaconService, start};
pub use referee::{
    AcceptedHeader, CheckedStep, MAX_REFUSED_STEPS_PER_SLOT, MAX_REJECTED_STEPS, Referee, RefereeStore,
    Resolution, Rules, Sealed,
};
pub use rpc::REJECTED_CODE;
pub use store::{Accepted, BEACON_SCHEMA, BeaconDb, DiscardedHeader, IncludedHeader, dependencies};
