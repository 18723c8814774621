//! `beacon` — the beacon node: slots, beacon blocks, the validator and bond
//! registry, shard header commitments, challenge windows, dispute games and
//! finality.
//!
//! Not built yet: it arrives with the multi-shard testnet issue, and verifies
//! disputed steps with `prover::execute_stateless`.
