//! Admin JSON-RPC methods every node process shares (`admin_*`): the
//! links a scenario shapes or cuts at runtime. Registered only when the
//! node runs with its admin RPC on (`admin_rpc`), never on a public
//! endpoint by default.

use jsonrpsee::RpcModule;
use jsonrpsee::core::RegisterMethodError;
use jsonrpsee::types::ErrorObjectOwned;
use libp2p::PeerId;
use serde::{Deserialize, Serialize};

use crate::{LinkModel, Network, P2pNetwork};

/// A link model as the admin RPC takes it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LinkParams {
    /// One-way delay, milliseconds.
    pub latency_ms: u64,
    /// Up to this much more delay per message, milliseconds.
    pub jitter_ms: u64,
    /// Share of messages lost.
    pub loss: f64,
    /// Kilobits a second.
    pub bandwidth_kbps: Option<u64>,
}

impl From<LinkParams> for LinkModel {
    fn from(p: LinkParams) -> Self {
        LinkModel {
            latency_ms: p.latency_ms,
            jitter_ms: p.jitter_ms,
            loss: p.loss,
            bandwidth_kbps: p.bandwidth_kbps,
        }
    }
}

/// Whether an RPC server with the admin methods may listen on `ip`: only
/// loopback or a private network (a testnet's namespaces), never a public
/// address, since the methods make a node lie and cut its links.
pub fn admin_bind_allowed(ip: std::net::IpAddr) -> bool {
    match ip {
        std::net::IpAddr::V4(v4) => v4.is_loopback() || v4.is_private(),
        std::net::IpAddr::V6(v6) => v6.is_loopback() || v6.is_unique_local(),
    }
}

fn invalid(msg: impl Into<String>) -> ErrorObjectOwned {
    ErrorObjectOwned::owned(-32602, format!("invalid params: {}", msg.into()), None::<()>)
}

fn peer(s: &str) -> Result<PeerId, ErrorObjectOwned> {
    s.parse().map_err(|e| invalid(format!("peer id {s:?}: {e}")))
}

/// Registers `admin_peerId`, `admin_setLink(peer, model | null)` and
/// `admin_setBlocked(peer, bool)` on `m`, acting on `net`.
pub fn register_link_admin<T: Send + Sync + 'static>(
    m: &mut RpcModule<T>,
    net: P2pNetwork,
) -> Result<(), RegisterMethodError> {
    let n = net.clone();
    m.register_method("admin_peerId", move |_, _, _| n.local_peer().to_string())?;
    let n = net.clone();
    m.register_method("admin_setLink", move |p, _, _| -> Result<bool, ErrorObjectOwned> {
        let (who, model): (String, Option<LinkParams>) = p.parse()?;
        let peer = peer(&who)?;
        let model = model.map(LinkModel::from);
        if let Some(m) = &model {
            m.check().map_err(invalid)?;
        }
        n.set_link(peer, model);
        Ok(true)
    })?;
    m.register_method("admin_setBlocked", move |p, _, _| -> Result<bool, ErrorObjectOwned> {
        let (who, blocked): (String, bool) = p.parse()?;
        net.set_blocked(peer(&who)?, blocked);
        Ok(true)
    })?;
    Ok(())
}
