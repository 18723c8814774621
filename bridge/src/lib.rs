//! `bridge` — the protocol's shared language.
//!
//! Everything two optishard components must agree on byte for byte lives here,
//! with no I/O: identifiers ([`ShardId`]), hashes ([`Hash`], blake3), the
//! canonical encoding ([`Encode`]/[`Decode`]), binary Merkle trees with
//! inclusion proofs ([`MerkleTree`], [`MerkleProof`]), the shard header
//! ([`ShardHeader`]) and the trace commitments of the dispute game
//! ([`TraceCommitment`]), validator keys and signatures ([`ValidatorKey`]),
//! the genesis [`ChainSpec`] with its proposer schedule, and what the chains
//! gossip ([`ShardBlock`], [`SignedHeader`], [`BeaconBlock`]).
//!
//! Where to start: [`ShardHeader`] shows what a shard commits to; [`Encode`]
//! is how every hashed structure becomes bytes.

mod beacon_block;
mod bonds;
mod chain;
mod codec;
mod dispute;
mod error;
pub mod game;
mod hash;
mod header;
mod merkle;
mod message;
mod pauses;
mod rules;
mod sig;
pub mod solver;
mod trace;

pub use beacon_block::{BeaconBlock, HeaderInclusion};
pub use bonds::{Bond, Bonds, MAX_PENDING_WITHDRAWALS};
pub use chain::{
    ChainSpec, ChallengerInfo, MAX_HEADERS_PER_REQUEST, MAX_MESSAGES_PER_REQUEST, STF_VERSION, ShardBlock,
    ShardHead, SignedHeader, SyncRequest, ValidatorInfo, decode_outbox_answer, message_item_hash,
    one_day_of_slots, tx_item_hash,
};
pub use codec::{Decode, Encode, MAX_LEN, decode_exact, decode_list, encode_list};
pub use dispute::{
    Action, Ending, GameRecord, Invalidation, MAX_BISECTION, MAX_DISPUTE_K, MAX_OPEN_GAMES, MAX_STAND_INS,
    MAX_STEP_BYTES, SignedMove, chain_invalidation, disputes_root, game_id,
};
pub use error::{DecodeError, ProofError};
pub use hash::{Hash, ShardId, hash_domain};
pub use header::{Address, ShardHeader};
pub use merkle::{Frontier, MerkleProof, MerkleTree, PrefixProof, merkle_root};
pub use message::{
    BRIDGE_ADDRESS, DEFAULT_MESSAGE_GAS, InboxEntry, MAX_MESSAGE_DATA, MAX_MESSAGE_GAS, MESSAGE_BASE_GAS,
    Message, MessageKind,
};
pub use pauses::{MAX_PAUSES, Pauses};
pub use rules::{
    CLOCK_SKEW_SLOTS, HeaderFault, INCLUSION_SLOTS, MismatchEvidence, check_body, check_header,
    inclusion_expired, is_future, may_include, next_base_fee,
};
pub use sig::{Signature, SignatureError, ValidatorKey};
pub use trace::{TraceCommitment, TraceState, item_start};
