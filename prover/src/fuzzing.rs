//! Every decoder that reads bytes from a peer, an RPC client or disk, by
//! name: the `cargo fuzz` targets in `fuzz/` and the corpus replay in the
//! test suite both call [`run`], so they always cover the same decoders.

use bridge::{
    BeaconBlock, Decode, MismatchEvidence, ShardBlock, SignedHeader, SyncRequest, decode_exact, decode_list,
};

use crate::SignedTx;

/// The fuzz targets, one per decoder (directory names under `fuzz/corpus`).
pub const TARGETS: &[&str] = &[
    "shard_block",
    "beacon_block",
    "sync_request",
    "sync_response",
    "tx_batch",
    "transaction",
    "evidence",
    "message",
    "dispute",
];

/// Feeds `data` to the decoder named `target`, exactly as a node does with
/// bytes off the wire. It may fail; it must never panic or allocate beyond
/// what `data` can justify. Unknown names are ignored.
pub fn run(target: &str, data: &[u8]) {
    match target {
        // gossip on a shard's topic, a submission to the beacon: the header
        // is decoded (and would be signature-checked) before the body
        "shard_block" => {
            if let Ok((sh, body)) = SignedHeader::decode_block_prefix(data) {
                let _ = sh.signer();
                let mut input = body;
                let _ = decode_list::<Vec<u8>>(&mut input);
            }
            if let Ok(b) = decode_exact::<ShardBlock>(data) {
                let _ = bridge::check_body(&b);
            }
        }
        "beacon_block" => {
            let _ = BeaconBlock::decode_signed(data, &bridge::Address::default());
            let _ = decode_exact::<BeaconBlock>(data);
        }
        "sync_request" => {
            let _ = decode_exact::<SyncRequest>(data);
        }
        // answers to sync requests: blocks (validators, beacon) and beacon blocks
        "sync_response" => {
            let mut input = data;
            let _ = decode_list::<ShardBlock>(&mut input);
            let mut input = data;
            let _ = decode_list::<BeaconBlock>(&mut input);
        }
        "tx_batch" => {
            let mut input = data;
            if let Ok(txs) = decode_list::<Vec<u8>>(&mut input) {
                for raw in txs.iter().take(8) {
                    let _ = SignedTx::decode(raw);
                }
            }
        }
        // eth_sendRawTransaction, and every transaction in a block body
        "transaction" => {
            let _ = SignedTx::decode(data);
        }
        // mismatch evidence read back from the node's database
        "evidence" => {
            let _ = decode_exact::<MismatchEvidence>(data);
            let mut input = data;
            let _ = MismatchEvidence::decode(&mut input);
        }
        // cross-shard messages and what a witness carries of a trace
        // (frontiers, commitments), and receipts read back from disk
        // dispute moves off the wire (the beacon's request handler), the
        // step a `Step` move carries, and the records beacon blocks carry
        "dispute" => {
            if let Ok(m) = decode_exact::<bridge::SignedMove>(data) {
                let _ = m.signer(&bridge::Hash::ZERO);
                if let bridge::Action::Step { step, .. } = &m.action {
                    let _ = crate::game::AnyStep::decode(step);
                }
            }
            let _ = crate::game::AnyStep::decode(data);
            // level 2's steps by themselves (a `Step` move's tag 3)
            let _ = decode_exact::<crate::machine::ItemStep>(data);
            let _ = decode_exact::<crate::machine::InstructionStep>(data);
            let _ = decode_exact::<bridge::GameRecord>(data);
            let _ = decode_exact::<bridge::Invalidation>(data);
            let _ = decode_exact::<bridge::Bonds>(data);
        }
        "message" => {
            let mut input = data;
            let _ = decode_list::<bridge::Message>(&mut input);
            let _ = decode_exact::<bridge::Message>(data);
            let _ = decode_exact::<bridge::TraceState>(data);
            let _ = decode_exact::<bridge::TraceCommitment>(data);
            let _ = decode_exact::<crate::Receipt>(data);
            let _ = decode_exact::<bridge::InboxEntry>(data);
            // a source validator's answer to a relay's outbox request
            if let Ok(entries) = bridge::decode_outbox_answer(data) {
                for e in entries.iter().take(8) {
                    let _ = e.verify(&bridge::Hash::ZERO);
                }
            }
        }
        _ => {}
    }
}
