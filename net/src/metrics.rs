//! Prometheus metrics: the network's own counters, and a small HTTP
//! endpoint that serves a node's whole registry at `/metrics`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tracing::debug;

use crate::Topic;

/// Labels of a metric: `(name, value)` pairs.
pub type Labels = Vec<(String, String)>;

/// The network's metrics.
#[derive(Clone, Default)]
pub struct NetMetrics {
    /// Gossip messages by topic, direction (`in`/`out`) and result.
    pub gossip: Family<Labels, Counter>,
    /// Connected peers.
    pub peers: Gauge,
    /// Network events dropped because the node's queue was full.
    pub dropped_events: Counter,
    /// Peers whose connections were reset because they connected again
    /// while an older connection was still open (a restarted peer).
    pub peer_resets: Counter,
}

impl NetMetrics {
    /// Registers the metrics under `optishard_net_*`.
    pub fn register(&self, registry: &mut Registry) {
        let r = registry.sub_registry_with_prefix("optishard_net");
        r.register("gossip_messages", "Gossip messages by topic, direction and result", self.gossip.clone());
        r.register("peers", "Connected peers", self.peers.clone());
        r.register(
            "dropped_events",
            "Network events dropped because the node's queue was full",
            self.dropped_events.clone(),
        );
        r.register(
            "peer_resets",
            "Peers reset because they connected again while an older connection was open",
            self.peer_resets.clone(),
        );
    }

    /// Counts one gossip message.
    pub fn gossip(&self, topic: Topic, direction: &str, result: &str) {
        self.gossip
            .get_or_create(&vec![
                ("topic".into(), topic.kind().into()),
                ("direction".into(), direction.into()),
                ("result".into(), result.into()),
            ])
            .inc();
    }
}

/// A running metrics endpoint.
pub struct MetricsServer {
    /// The bound address.
    pub addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl MetricsServer {
    /// Stops serving.
    pub fn stop(self) {
        self.task.abort();
    }
}

/// Serves `registry` in the OpenMetrics text format at
/// `http://addr/metrics`.
pub async fn serve_metrics(
    addr: SocketAddr,
    registry: Arc<Mutex<Registry>>,
) -> std::io::Result<MetricsServer> {
    let listener = TcpListener::bind(addr).await?;
    let addr = listener.local_addr()?;
    let task = tokio::spawn(async move {
        loop {
            let Ok((mut sock, _)) = listener.accept().await else { continue };
            let registry = registry.clone();
            tokio::spawn(async move {
                let mut buf = Vec::with_capacity(1024);
                let mut chunk = [0u8; 1024];
                let read = tokio::time::timeout(Duration::from_secs(5), async {
                    while !buf.windows(4).any(|w| w == b"\r\n\r\n") && buf.len() < 16 << 10 {
                        match sock.read(&mut chunk).await {
                            Ok(0) | Err(_) => return false,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    }
                    true
                })
                .await;
                if !matches!(read, Ok(true)) {
                    return;
                }
                let line = String::from_utf8_lossy(&buf);
                let path = line.split_whitespace().nth(1).unwrap_or("");
                let response = if line.starts_with("GET ")
                    && (path == "/metrics" || path.starts_with("/metrics?"))
                {
                    let mut body = String::new();
                    if encode(&mut body, &registry.lock()).is_err() {
                        body.clear();
                    }
                    format!(
                        "HTTP/1.1 200 OK\r\nContent-Type: application/openmetrics-text; version=1.0.0; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    )
                } else {
                    "HTTP/1.1 404 Not Found\r\nContent-Length: 10\r\nConnection: close\r\n\r\nnot found\n"
                        .to_string()
                };
                if let Err(e) = sock.write_all(response.as_bytes()).await {
                    debug!(target: "metrics", error = %e, "metrics response failed");
                }
                let _ = sock.shutdown().await;
            });
        }
    });
    Ok(MetricsServer { addr, task })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn serves_the_registry_and_404s_elsewhere() {
        let mut reg = Registry::default();
        let m = NetMetrics::default();
        m.register(&mut reg);
        m.gossip(Topic::BeaconBlocks, "in", "accepted");
        m.peers.set(3);
        let srv = serve_metrics("127.0.0.1:0".parse().unwrap(), Arc::new(Mutex::new(reg))).await.unwrap();
        let get = |path: &'static str| async move {
            let mut s = tokio::net::TcpStream::connect(srv.addr).await.unwrap();
            s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes()).await.unwrap();
            let mut out = String::new();
            s.read_to_string(&mut out).await.unwrap();
            out
        };
        let body = get("/metrics").await;
        assert!(body.starts_with("HTTP/1.1 200"), "{body}");
        assert!(body.contains("optishard_net_peers 3"), "{body}");
        assert!(
            body.contains(r#"optishard_net_gossip_messages_total{topic="beacon_blocks",direction="in",result="accepted"} 1"#),
            "{body}"
        );
        assert!(get("/other").await.starts_with("HTTP/1.1 404"));
        srv.stop();
    }
}

/// JSON-RPC request and error counters by method, as a jsonrpsee
/// middleware ([`RpcMetrics::layer`]).
#[derive(Clone, Default)]
pub struct RpcMetrics {
    requests: Family<Labels, Counter>,
    errors: Family<Labels, Counter>,
    known: Arc<std::collections::HashSet<String>>,
}

impl RpcMetrics {
    /// Counters for a server with these methods (any other name is counted
    /// as `other`, so clients cannot grow the label set).
    pub fn new(methods: impl IntoIterator<Item = String>) -> Self {
        RpcMetrics { known: Arc::new(methods.into_iter().collect()), ..Default::default() }
    }

    /// Registers `optishard_rpc_requests_total` and `optishard_rpc_errors_total`.
    pub fn register(&self, registry: &mut Registry) {
        let r = registry.sub_registry_with_prefix("optishard_rpc");
        r.register("requests", "JSON-RPC requests by method", self.requests.clone());
        r.register("errors", "JSON-RPC error responses by method", self.errors.clone());
    }

    fn labels(&self, method: &str) -> Labels {
        let m = if self.known.contains(method) { method } else { "other" };
        vec![("method".into(), m.into())]
    }

    fn count(&self, method: &str, error: bool) {
        let l = self.labels(method);
        self.requests.get_or_create(&l).inc();
        if error {
            self.errors.get_or_create(&l).inc();
        }
    }

    /// The middleware for `jsonrpsee::server::Server::builder().set_rpc_middleware(…)`.
    pub fn layer(
        &self,
    ) -> jsonrpsee::server::middleware::rpc::RpcServiceBuilder<
        tower_layer::Stack<RpcCountingLayer, tower_layer::Identity>,
    > {
        jsonrpsee::server::middleware::rpc::RpcServiceBuilder::new().layer(RpcCountingLayer(self.clone()))
    }
}

/// Wraps a JSON-RPC service in [`RpcCounting`].
#[derive(Clone)]
pub struct RpcCountingLayer(RpcMetrics);

impl<S> tower_layer::Layer<S> for RpcCountingLayer {
    type Service = RpcCounting<S>;
    fn layer(&self, inner: S) -> RpcCounting<S> {
        RpcCounting { inner, metrics: self.0.clone() }
    }
}

/// The counting middleware service.
#[derive(Clone)]
pub struct RpcCounting<S> {
    inner: S,
    metrics: RpcMetrics,
}

impl<S> jsonrpsee::server::middleware::rpc::RpcServiceT for RpcCounting<S>
where
    S: jsonrpsee::server::middleware::rpc::RpcServiceT<
            MethodResponse = jsonrpsee::MethodResponse,
            BatchResponse = jsonrpsee::MethodResponse,
        > + Clone
        + Send
        + Sync
        + 'static,
{
    type MethodResponse = S::MethodResponse;
    type NotificationResponse = S::NotificationResponse;
    type BatchResponse = S::BatchResponse;

    fn call<'a>(
        &self,
        request: jsonrpsee::types::Request<'a>,
    ) -> impl Future<Output = Self::MethodResponse> + Send + 'a {
        let inner = self.inner.clone();
        let metrics = self.metrics.clone();
        let method = request.method_name().to_owned();
        async move {
            let r = inner.call(request).await;
            metrics.count(&method, r.is_error());
            r
        }
    }

    fn batch<'a>(
        &self,
        requests: jsonrpsee::core::middleware::Batch<'a>,
    ) -> impl Future<Output = Self::BatchResponse> + Send + 'a {
        for entry in requests.iter().flatten() {
            self.metrics.count(entry.method_name(), false);
        }
        self.inner.batch(requests)
    }

    fn notification<'a>(
        &self,
        n: jsonrpsee::core::middleware::Notification<'a>,
    ) -> impl Future<Output = Self::NotificationResponse> + Send + 'a {
        self.inner.notification(n)
    }
}
