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
