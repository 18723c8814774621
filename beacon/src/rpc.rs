//! The beacon's JSON-RPC API (`beacon_*`): blocks, the registry and
//! schedule, each shard's accepted header chain, rejections, and header
//! submission.

use std::net::SocketAddr;
use std::sync::Arc;

use bridge::{BeaconBlock, ShardBlock, ShardHead, ShardId, SignedHeader};
use jsonrpsee::RpcModule;
use jsonrpsee::server::Server;
use jsonrpsee::types::{ErrorObjectOwned, Params};
use net::{Network, RpcMetrics};
use serde::Serialize;

use crate::chain::BeaconChain;
use crate::store::IncludedHeader;
use crate::{Error, Result};

/// Most items one call returns.
const MAX_RANGE: u64 = 256;

/// The code of a refused header submission.
pub const REJECTED_CODE: i32 = -32010;

fn invalid(msg: impl Into<String>) -> ErrorObjectOwned {
    ErrorObjectOwned::owned(-32602, msg.into(), None::<()>)
}

fn internal(e: impl std::fmt::Display) -> ErrorObjectOwned {
    ErrorObjectOwned::owned(-32603, e.to_string(), None::<()>)
}

/// `beacon_head`.
#[derive(Clone, Serialize)]
struct HeadView {
    slot: Option<u64>,
    hash: Option<bridge::Hash>,
    current_slot: u64,
    heads: Vec<ShardHead>,
    /// Each shard's newest final height.
    finalized: Vec<u64>,
    challenge_window_slots: u64,
}

/// An accepted header as the RPC shows it.
#[derive(Clone, Serialize)]
struct HeaderView {
    hash: bridge::Hash,
    included_in: u64,
    #[serde(flatten)]
    signed: SignedHeader,
}

impl From<IncludedHeader> for HeaderView {
    fn from(h: IncludedHeader) -> Self {
        HeaderView { hash: h.header.header.hash(), included_in: h.included_in, signed: h.header }
    }
}

/// A beacon block with its hash.
#[derive(Clone, Serialize)]
struct BlockView {
    hash: bridge::Hash,
    #[serde(flatten)]
    block: BeaconBlock,
}

struct Ctx<N> {
    chain: Arc<BeaconChain>,
    net: N,
}

/// `beacon_submitBlock`'s argument: a signed header and its raw transactions (hex).
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct BlockSubmission {
    header: SignedHeader,
    #[serde(default)]
    inbox: Vec<bridge::InboxEntry>,
    txs: Vec<alloy_primitives::Bytes>,
}

fn seq<T: serde::de::DeserializeOwned>(
    p: &Params<'_>,
    i: usize,
    name: &str,
) -> Result<Option<T>, ErrorObjectOwned> {
    let mut s = p.sequence();
    for _ in 0..i {
        let _: serde_json::Value =
            s.next().map_err(|_| invalid(format!("missing parameter before {name}")))?;
    }
    s.optional_next::<T>().map_err(|e| invalid(format!("{name}: {}", e.message())))
}

fn required<T: serde::de::DeserializeOwned>(
    p: &Params<'_>,
    i: usize,
    name: &str,
) -> Result<T, ErrorObjectOwned> {
    seq(p, i, name)?.ok_or_else(|| invalid(format!("missing parameter {name}")))
}

fn module<N: Network>(chain: Arc<BeaconChain>, net: N) -> Result<RpcModule<Ctx<N>>> {
    let mut m = RpcModule::new(Ctx { chain, net });
    let reg = |e: jsonrpsee::core::RegisterMethodError| Error::Rpc(e.to_string());
    m.register_method("beacon_spec", |_, c, _| -> Result<_, ErrorObjectOwned> { Ok(c.chain.spec().clone()) })
        .map_err(reg)?;
    m.register_method("beacon_head", |_, c, _| -> Result<_, ErrorObjectOwned> {
        Ok(HeadView {
            slot: c.chain.head().map(|h| h.0),
            hash: c.chain.head().map(|h| h.1),
            current_slot: c.chain.spec().slot_at(net::now_ms()),
            heads: c.chain.heads(),
            finalized: c.chain.finalized(),
            challenge_window_slots: c.chain.spec().challenge_window(),
        })
    })
    .map_err(reg)?;
    // proof that a beacon block included a shard header: the header hash's
    // Merkle proof against the block's headers root, and the block's state root
    m.register_method(
        "beacon_headerProof",
        |p, c, _| -> Result<Option<serde_json::Value>, ErrorObjectOwned> {
            let shard: u32 = required(&p, 0, "shard")?;
            let height: u64 = required(&p, 1, "height")?;
            let Some(h) = c.chain.db().shard_header(bridge::ShardId(shard), height).map_err(internal)? else {
                return Ok(None);
            };
            let Some(block) = c.chain.db().block(h.included_in).map_err(internal)? else { return Ok(None) };
            let hash = h.header.header.hash();
            let Some(i) = block.headers.iter().position(|x| x.header.hash() == hash) else { return Ok(None) };
            let proof = block.header_inclusion(&c.chain.spec().hash(), i);
            Ok(Some(serde_json::json!({
                "headerHash": hash,
                "blockHash": block.hash(),
                "stateRoot": block.state_root,
                "inclusion": proof,
            })))
        },
    )
    .map_err(reg)?;
    // an accepted header's finality: hash, inclusion slot, pending/final,
    // the first slot it can be final at, the source headers it depends on
    m.register_method(
        "beacon_headerStatus",
        |p, c, _| -> Result<Option<crate::HeaderStatus>, ErrorObjectOwned> {
            let shard: u32 = required(&p, 0, "shard")?;
            let height: u64 = required(&p, 1, "height")?;
            if shard >= c.chain.spec().shards {
                return Err(invalid(format!("no shard {shard}")));
            }
            c.chain.header_status(bridge::ShardId(shard), height).map_err(internal)
        },
    )
    .map_err(reg)?;
    m.register_method("beacon_getBlock", |p, c, _| -> Result<Option<BlockView>, ErrorObjectOwned> {
        let slot: u64 = required(&p, 0, "slot")?;
        Ok(c.chain.db().block(slot).map_err(internal)?.map(|block| BlockView { hash: block.hash(), block }))
    })
    .map_err(reg)?;
    m.register_method("beacon_getBlocks", |p, c, _| -> Result<Vec<BlockView>, ErrorObjectOwned> {
        let from: u64 = required(&p, 0, "from")?;
        let count: u64 = seq(&p, 1, "count")?.unwrap_or(MAX_RANGE);
        if count > MAX_RANGE {
            return Err(invalid(format!("count {count} over the limit {MAX_RANGE}")));
        }
        let blocks = c.chain.db().blocks_from(from, count as usize).map_err(internal)?;
        Ok(blocks.into_iter().map(|block| BlockView { hash: block.hash(), block }).collect())
    })
    .map_err(reg)?;
    m.register_method("beacon_registry", |_, c, _| -> Result<_, ErrorObjectOwned> {
        Ok(c.chain.spec().validators.clone())
    })
    .map_err(reg)?;
    m.register_method("beacon_proposer", |p, c, _| -> Result<bridge::Address, ErrorObjectOwned> {
        let shard: u32 = required(&p, 0, "shard")?;
        let slot: u64 = required(&p, 1, "slot")?;
        c.chain.spec().proposer(ShardId(shard), slot).ok_or_else(|| invalid(format!("no shard {shard}")))
    })
    .map_err(reg)?;
    m.register_method("beacon_shardHeaders", |p, c, _| -> Result<Vec<HeaderView>, ErrorObjectOwned> {
        let shard: u32 = required(&p, 0, "shard")?;
        if shard >= c.chain.spec().shards {
            return Err(invalid(format!("no shard {shard}")));
        }
        let from: u64 = seq(&p, 1, "from")?.unwrap_or(1);
        let count: u64 = seq(&p, 2, "count")?.unwrap_or(MAX_RANGE);
        if count > MAX_RANGE {
            return Err(invalid(format!("count {count} over the limit {MAX_RANGE}")));
        }
        let hs = c.chain.shard_headers(ShardId(shard), from, count as usize).map_err(internal)?;
        Ok(hs.into_iter().map(HeaderView::from).collect())
    })
    .map_err(reg)?;
    m.register_method("beacon_rejections", |p, c, _| -> Result<_, ErrorObjectOwned> {
        let limit: u64 = seq(&p, 0, "limit")?.unwrap_or(100);
        Ok(c.chain.rejections(limit.min(1000) as usize))
    })
    .map_err(reg)?;
    m.register_method("beacon_submitBlock", |p, c, _| -> Result<_, ErrorObjectOwned> {
        let sub: BlockSubmission = required(&p, 0, "block")?;
        let current = c.chain.spec().slot_at(net::now_ms());
        c.chain
            .submit(
                ShardBlock {
                    header: sub.header,
                    inbox: sub.inbox,
                    txs: sub.txs.into_iter().map(|t| t.to_vec()).collect(),
                },
                current,
            )
            .map_err(|r| ErrorObjectOwned::owned(REJECTED_CODE, r.to_string(), Some(r)))
    })
    .map_err(reg)?;
    // dispute games: parties, target, every move, clocks, rounds, the step's
    // witness bytes and verification time, outcome, bonds moved
    m.register_method("beacon_games", |p, c, _| -> Result<Vec<crate::GameLog>, ErrorObjectOwned> {
        let mut args = p.sequence();
        let shard: Option<u32> =
            args.optional_next().map_err(|e| invalid(format!("shard: {}", e.message())))?;
        let status: Option<String> =
            args.optional_next().map_err(|e| invalid(format!("status: {}", e.message())))?;
        let want_open = match status.as_deref() {
            None | Some("all") => None,
            Some("open") => Some(true),
            Some("ended") => Some(false),
            Some(other) => return Err(invalid(format!("status {other}: expected open, ended or all"))),
        };
        let games = c.chain.all_games(10_000).map_err(internal)?;
        Ok(games
            .into_iter()
            .filter(|g| shard.is_none_or(|s| g.record.shard.0 == s))
            .filter(|g| want_open.is_none_or(|o| g.record.is_open() == o))
            .rev()
            .take(MAX_RANGE as usize)
            .collect())
    })
    .map_err(reg)?;
    m.register_method("beacon_game", |p, c, _| -> Result<Option<crate::GameLog>, ErrorObjectOwned> {
        let id: bridge::Hash = required(&p, 0, "id")?;
        c.chain.game(&id).map_err(internal)
    })
    .map_err(reg)?;
    m.register_method("beacon_bonds", |_, c, _| -> Result<bridge::Bonds, ErrorObjectOwned> {
        Ok(c.chain.games().1)
    })
    .map_err(reg)?;
    m.register_method("beacon_submitMove", |p, c, _| -> Result<&'static str, ErrorObjectOwned> {
        let mv: bridge::SignedMove = required(&p, 0, "move")?;
        let current = c.chain.spec().slot_at(net::now_ms());
        c.chain
            .submit_move(mv, current)
            .map(|()| "accepted")
            .map_err(|r| ErrorObjectOwned::owned(REJECTED_CODE, r.to_string(), Some(r)))
    })
    .map_err(reg)?;
    m.register_method("beacon_nodeInfo", |_, c, _| -> Result<_, ErrorObjectOwned> {
        Ok(serde_json::json!({
            "peer_id": c.net.local_peer().to_string(),
            "peers": c.net.peers().len(),
            "network": c.chain.spec().hash(),
        }))
    })
    .map_err(reg)?;
    Ok(m)
}

/// Serves the API on `addr`; returns the bound address, the server and
/// its request counters.
pub(crate) async fn serve<N: Network>(
    chain: Arc<BeaconChain>,
    net: N,
    addr: SocketAddr,
    admin: Option<net::P2pNetwork>,
) -> Result<(SocketAddr, jsonrpsee::server::ServerHandle, RpcMetrics)> {
    let mut m = module(chain, net)?;
    if let Some(p2p) = admin {
        net::register_link_admin(&mut m, p2p).map_err(|e| Error::Rpc(e.to_string()))?;
    }
    let metrics = RpcMetrics::new(m.method_names().map(String::from));
    let server = Server::builder()
        .set_rpc_middleware(metrics.layer())
        .build(addr)
        .await
        .map_err(|e| Error::Rpc(format!("bind {addr}: {e}")))?;
    let bound = server.local_addr().map_err(|e| Error::Rpc(e.to_string()))?;
    Ok((bound, server.start(m), metrics))
}
