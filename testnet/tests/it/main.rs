//! The `optishard` binary: crash safety under SIGKILL, the CLI's config
//! handling, the local testnet end to end; and the deterministic tier.

mod byzantine;
mod chaos;
mod cli;
mod crash;
mod cross_shard;
mod cross_shard_e2e;
mod disputes;
mod disputes_e2e;
mod local_testnet;
mod readme;
mod scenario;
mod sim;
mod support;

/// Tests that run real node processes against wall-clock deadlines take
/// turns, so two of them never starve each other of the machine's cores.
async fn timing_sensitive() -> tokio::sync::MutexGuard<'static, ()> {
    static LOCK: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    LOCK.lock().await
}
