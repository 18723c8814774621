//! The partial tree rebuilt from proofs computes the roots jmt computes.

use std::collections::BTreeMap;

use alloy_primitives::{Address, U256};
use proptest::prelude::*;
use prover::{AuthState, ChangeSet, PartialTree, StateKey, encode_slot};

fn key(i: u16) -> StateKey {
    StateKey::Storage(Address::repeat_byte(1), U256::from(i))
}

fn ops() -> impl Strategy<Value = Vec<Vec<(u16, Option<u64>)>>> {
    // rounds of updates over a small key space, so inserts, updates,
    // deletes and splits all happen
    prop::collection::vec(
        prop::collection::vec((0u16..64, prop::option::weighted(0.7, 1u64..1000)), 1..12),
        1..6,
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn partial_tree_matches_jmt(rounds in ops(), genesis in prop::collection::vec(0u16..64, 0..40)) {
        let state = AuthState::in_memory();
        let g: ChangeSet = genesis.iter().map(|k| (key(*k), Some(encode_slot(U256::from(*k as u64 + 1))))).collect();
        let mut root = state.commit(0, &g).unwrap();
        for (v, round) in rounds.iter().enumerate() {
            let changes: ChangeSet = round
                .iter()
                .map(|(k, val)| (key(*k), val.map(|x| encode_slot(U256::from(x)))))
                .collect::<BTreeMap<_, _>>();
            let proofs: Vec<_> = changes.keys().map(|k| state.prove(*k, v as u64).unwrap()).collect();
            for p in &proofs {
                p.verify(&root).unwrap();
            }
            let hashes: Vec<[u8; 32]> = proofs.iter().map(|p| p.key.key_hash().0).collect();
            let mut tree = PartialTree::from_proofs(hashes.iter().zip(proofs.iter().map(|p| &p.proof))).unwrap();
            prop_assert_eq!(tree.hash(), root.0);
            for (k, val) in &changes {
                tree.update(&k.key_hash().0, val.as_deref()).unwrap();
            }
            root = state.commit(v as u64 + 1, &changes).unwrap();
            prop_assert_eq!(bridge::Hash(tree.hash()), root, "round {}", v);
        }
    }
}

#[test]
fn updating_an_unopened_key_fails() {
    let state = AuthState::in_memory();
    let g: ChangeSet = (0..50).map(|k| (key(k), Some(encode_slot(U256::from(1))))).collect();
    state.commit(0, &g).unwrap();
    let p = state.prove(key(1), 0).unwrap();
    let kh = key(1).key_hash().0;
    let mut tree = PartialTree::from_proofs([(&kh, &p.proof)]).unwrap();
    // some key among these lands under an opaque subtree
    let failed = (100..200).any(|k| tree.clone().update(&key(k).key_hash().0, Some(b"x")).is_err());
    assert!(failed);
    tree.update(&kh, Some(b"y")).unwrap();
}

#[test]
fn memory_store_passes_the_store_suite() {
    prover::store_suite::run_all(&|| std::sync::Arc::new(prover::MemStore::new()));
}
