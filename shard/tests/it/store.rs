//! The rocksdb store passes the same suite as the memory store.

use std::sync::Arc;

use shard::ShardDb;

#[test]
fn rocksdb_store_passes_the_store_suite() {
    let dirs = parking_lot::Mutex::new(Vec::new());
    prover::store_suite::run_all(&|| {
        let dir = tempfile::tempdir().unwrap();
        let db = ShardDb::open(dir.path(), false).unwrap();
        dirs.lock().push(dir);
        db.state_store() as Arc<dyn prover::StateStore>
    });
}

#[test]
fn state_survives_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let root = {
        let db = ShardDb::open(dir.path(), false).unwrap();
        let state = prover::AuthState::new(db.state_store());
        let mut c = prover::ChangeSet::new();
        c.insert(prover::StateKey::Code(Default::default()), Some(vec![1, 2, 3]));
        state.commit(0, &c).unwrap()
    };
    let db = ShardDb::open(dir.path(), false).unwrap();
    let state = prover::AuthState::new(db.state_store());
    assert_eq!(state.latest_version().unwrap(), Some(0));
    assert_eq!(state.root(0).unwrap(), root);
    assert_eq!(state.get(&prover::StateKey::Code(Default::default()), 0).unwrap(), Some(vec![1, 2, 3]));
}

/// A revert below the oldest state version kept cannot restore the state:
/// it is refused before any block is deleted, and the node stays usable.
#[test]
fn a_revert_below_the_kept_state_is_refused_and_deletes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = shard::ShardConfig {
        datadir: dir.path().to_path_buf(),
        state_history: 4,
        genesis: shard::dev_accounts().into_iter().map(|(_, g)| g).collect(),
        ..shard::ShardConfig::default()
    };
    let node = shard::ShardNode::open(cfg.clone()).unwrap();
    for _ in 0..130 {
        node.produce_block().unwrap();
    }
    // versions below 124 are pruned (every 64 blocks, keeping 4)
    let head = node.head();
    assert!(node.revert_to(10).is_err());
    assert_eq!(node.head().hash, head.hash, "the head did not move");
    assert!(node.block(11).unwrap().is_some(), "no block was deleted");
    // a revert within the kept versions works, and so does reopening
    assert_eq!(node.revert_to(128).unwrap(), 2);
    drop(node);
    let node = shard::ShardNode::open(cfg).unwrap();
    assert_eq!(node.head().header.height, 128);
    node.produce_block().unwrap();
}
