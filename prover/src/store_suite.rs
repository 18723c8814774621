//! The conformance suite every [`StateStore`] passes (run by the memory
//! store's tests here and by the rocksdb store's tests in `shard`).
//! Each function panics with a message on the first violation.

use std::sync::Arc;

use alloy_primitives::{Address, U256};

use crate::{AccountState, AuthState, ChangeSet, StateKey, StateStore, encode_slot};

fn account(n: u64) -> Option<Vec<u8>> {
    Some(AccountState { nonce: n, balance: U256::from(n * 1000), ..Default::default() }.encode())
}

fn addr(i: u8) -> Address {
    Address::repeat_byte(i)
}

/// Runs every check on a fresh store from `make`.
pub fn run_all(make: &dyn Fn() -> Arc<dyn StateStore>) {
    proofs_of_inclusion_and_absence(make());
    versions_stay_readable_and_roll_back(make());
    pruning_frees_old_versions_only(make());
}

/// Inclusion and absence proofs verify against their root and no other.
pub fn proofs_of_inclusion_and_absence(store: Arc<dyn StateStore>) {
    let state = AuthState::new(store);
    let mut c = ChangeSet::new();
    for i in 1..=20u8 {
        c.insert(StateKey::Account(addr(i)), account(i as u64));
        c.insert(StateKey::Storage(addr(i), U256::from(i)), Some(encode_slot(U256::from(7))));
    }
    let root = state.commit(0, &c).expect("commit genesis");
    for i in 1..=20u8 {
        let p = state.prove(StateKey::Account(addr(i)), 0).unwrap();
        assert_eq!(p.value, account(i as u64));
        p.verify(&root).expect("inclusion proof verifies");
        let mut forged = p.clone();
        forged.value = account(999);
        assert!(forged.verify(&root).is_err(), "a wrong value must not verify");
    }
    let absent = state.prove(StateKey::Account(addr(200)), 0).unwrap();
    assert_eq!(absent.value, None);
    absent.verify(&root).expect("absence proof verifies");
    let mut claimed = absent.clone();
    claimed.value = account(1);
    assert!(claimed.verify(&root).is_err(), "absence must not prove presence");
    let mut c2 = ChangeSet::new();
    c2.insert(StateKey::Account(addr(1)), account(2));
    let root1 = state.commit(1, &c2).unwrap();
    assert_ne!(root, root1);
    let old = state.prove(StateKey::Account(addr(1)), 0).unwrap();
    assert!(old.verify(&root1).is_err(), "a proof binds to its root");
}

/// Old versions stay readable; rollback restores values and roots exactly.
pub fn versions_stay_readable_and_roll_back(store: Arc<dyn StateStore>) {
    let state = AuthState::new(store);
    let mut roots = Vec::new();
    for v in 0..6u64 {
        let mut c = ChangeSet::new();
        c.insert(StateKey::Account(addr(1)), account(v));
        c.insert(StateKey::Account(addr(2 + v as u8)), account(1));
        if v == 3 {
            c.insert(StateKey::Account(addr(2)), None);
        }
        roots.push(state.commit(v, &c).unwrap());
    }
    for v in 0..6u64 {
        assert_eq!(state.root(v).unwrap(), roots[v as usize], "root of version {v}");
        assert_eq!(state.get(&StateKey::Account(addr(1)), v).unwrap(), account(v));
    }
    assert_eq!(state.get(&StateKey::Account(addr(2)), 2).unwrap(), account(1));
    assert_eq!(state.get(&StateKey::Account(addr(2)), 4).unwrap(), None, "deleted at 3");
    state.rollback(2).unwrap();
    assert_eq!(state.latest_version().unwrap(), Some(2));
    assert_eq!(state.root(2).unwrap(), roots[2]);
    assert!(state.root(3).is_err(), "rolled-back versions are gone");
    assert_eq!(state.get(&StateKey::Account(addr(2)), 2).unwrap(), account(1));
    assert_eq!(state.get(&StateKey::Account(addr(5)), 2).unwrap(), None);
    // the chain continues from the rolled-back version with the same result
    let mut c = ChangeSet::new();
    c.insert(StateKey::Account(addr(1)), account(3));
    c.insert(StateKey::Account(addr(5)), account(1));
    c.insert(StateKey::Account(addr(2)), None);
    assert_eq!(state.commit(3, &c).unwrap(), roots[3]);
    assert!(state.commit(5, &c).is_err(), "versions must be consecutive");
}

/// Pruning frees versions before the cut and keeps every later one intact.
pub fn pruning_frees_old_versions_only(store: Arc<dyn StateStore>) {
    let state = AuthState::new(store);
    let mut roots = Vec::new();
    for v in 0..8u64 {
        let mut c = ChangeSet::new();
        for i in 0..10u8 {
            c.insert(StateKey::Storage(addr(9), U256::from(i)), Some(encode_slot(U256::from(v + 1))));
        }
        roots.push(state.commit(v, &c).unwrap());
    }
    state.prune(5).unwrap();
    assert!(state.root(4).is_err(), "pruned version is unreadable");
    for v in 5..8u64 {
        assert_eq!(state.root(v).unwrap(), roots[v as usize]);
        let p = state.prove(StateKey::Storage(addr(9), U256::from(3)), v).unwrap();
        p.verify(&roots[v as usize]).unwrap();
    }
    assert!(state.rollback(4).is_err(), "cannot roll back past the pruned horizon");
}
