//! A standard Ethereum client library (alloy's provider) deploys, calls and
//! transacts with a compiled Solidity contract on the dev node, unchanged.

use std::time::Duration;

use alloy_network::{EthereumWallet, TransactionBuilder};
use alloy_primitives::{Address, U256, keccak256};
use alloy_provider::{Provider, ProviderBuilder};
use alloy_rpc_types_eth::{Filter, TransactionRequest};
use alloy_sol_types::{SolCall, SolEvent, sol};

use crate::support::{dev_node, store_bin};

sol! {
    interface IStore {
        function set(uint256 key, uint256 value) external;
        function get(uint256 key) external view returns (uint256);
        function count() external view returns (uint256);
        event ValueSet(address indexed who, uint256 indexed key, uint256 value);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn alloy_provider_deploys_calls_transacts_and_reads_back() {
    tokio::time::timeout(Duration::from_secs(120), scenario()).await.expect("scenario finishes in time");
}

async fn scenario() {
    let dir = tempfile::tempdir().unwrap();
    let node = dev_node(&dir).await;
    let (signer, _) = shard::dev_accounts().remove(0);
    let me = signer.address();
    let url = format!("http://{}", node.rpc_addr).parse().unwrap();
    let provider = ProviderBuilder::new().wallet(EthereumWallet::from(signer)).connect_http(url);

    assert_eq!(provider.get_chain_id().await.unwrap(), 31_337);
    let start_balance = provider.get_balance(me).await.unwrap();
    assert_eq!(start_balance, U256::from(10_000u64) * U256::from(10u64).pow(U256::from(18)));

    // deploy the compiled contract
    let deploy = TransactionRequest::default().with_deploy_code(store_bin());
    let receipt = provider.send_transaction(deploy).await.unwrap().get_receipt().await.unwrap();
    assert!(receipt.status());
    let contract = receipt.contract_address.expect("deployment has an address");
    assert!(!provider.get_code_at(contract).await.unwrap().is_empty());

    // a write that emits an event
    let set = IStore::setCall { key: U256::from(5), value: U256::from(99) }.abi_encode();
    let tx = TransactionRequest::default().with_to(contract).with_input(set);
    let receipt = provider.send_transaction(tx).await.unwrap().get_receipt().await.unwrap();
    assert!(receipt.status());
    let logs = receipt.inner.logs();
    assert_eq!(logs.len(), 1);
    let ev = IStore::ValueSet::decode_log(&logs[0].inner).unwrap();
    assert_eq!((ev.who, ev.key, ev.value), (me, U256::from(5), U256::from(99)));
    let block = receipt.block_number.unwrap();

    // read it back: call, storage, logs
    let get = IStore::getCall { key: U256::from(5) }.abi_encode();
    let out = provider.call(TransactionRequest::default().with_to(contract).with_input(get)).await.unwrap();
    assert_eq!(U256::from_be_slice(&out), U256::from(99));
    let slot = keccak256([U256::from(5).to_be_bytes::<32>(), [0u8; 32]].concat());
    assert_eq!(provider.get_storage_at(contract, U256::from_be_bytes(slot.0)).await.unwrap(), U256::from(99));
    assert_eq!(provider.get_storage_at(contract, U256::from(1)).await.unwrap(), U256::from(1), "count");
    // optishard_getProof: account and storage proofs against the block's
    // state root, checked with the prover API
    let slot_key = U256::from_be_bytes(slot.0);
    let body = serde_json::json!({"jsonrpc": "2.0", "id": 1, "method": "optishard_getProof",
        "params": [contract, [slot_key, U256::from(77)], "latest"]});
    let url = format!("http://{}", node.rpc_addr);
    let v: serde_json::Value =
        reqwest::Client::new().post(&url).json(&body).send().await.unwrap().json().await.unwrap();
    let proof: shard::ProofResponse = serde_json::from_value(v["result"].clone()).unwrap();
    proof.account.verify(&proof.state_root).expect("account proof verifies");
    let acct = prover::AccountState::decode(proof.account.value.as_ref().unwrap()).unwrap();
    assert_eq!(acct.code_hash, keccak256(provider.get_code_at(contract).await.unwrap()));
    proof.storage[0].verify(&proof.state_root).expect("storage proof verifies");
    assert_eq!(prover::decode_slot(proof.storage[0].value.as_ref().unwrap()).unwrap(), U256::from(99));
    proof.storage[1].verify(&proof.state_root).expect("absence proof verifies");
    assert_eq!(proof.storage[1].value, None);
    let header = provider.get_block_by_number(proof.block_number.into()).await.unwrap().unwrap();
    assert_eq!(header.header.state_root.0, proof.state_root.0, "proofs are against the block's state root");

    let filter = Filter::new()
        .address(contract)
        .event_signature(IStore::ValueSet::SIGNATURE_HASH)
        .from_block(block)
        .to_block(block);
    let found = provider.get_logs(&filter).await.unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].transaction_hash, Some(receipt.transaction_hash));
    let none =
        provider.get_logs(&Filter::new().address(Address::repeat_byte(1)).from_block(0)).await.unwrap();
    assert!(none.is_empty());

    // a revert: the call reports the reason; a mined revert has status 0
    let bad = IStore::setCall { key: U256::from(5), value: U256::ZERO }.abi_encode();
    let req = TransactionRequest::default().with_from(me).with_to(contract).with_input(bad);
    let err = provider.call(req.clone()).await.unwrap_err().to_string();
    assert!(err.contains("execution reverted: value must be non-zero"), "{err}");
    let err = provider.estimate_gas(req.clone()).await.unwrap_err().to_string();
    assert!(err.contains("value must be non-zero"), "{err}");
    let receipt =
        provider.send_transaction(req.with_gas_limit(100_000)).await.unwrap().get_receipt().await.unwrap();
    assert!(!receipt.status());
    assert!(receipt.inner.logs().is_empty());

    // a block's receipts at once (eth_getBlockReceipts), as one by one
    let at = receipt.block_number.unwrap();
    let all = provider.get_block_receipts(at.into()).await.unwrap().expect("the block exists");
    let mine = all.iter().find(|r| r.transaction_hash == receipt.transaction_hash).expect("its receipt");
    assert_eq!(mine, &receipt, "the same receipt both ways");
    let by_hash = provider.get_block_receipts(receipt.block_hash.unwrap().into()).await.unwrap().unwrap();
    assert_eq!(by_hash, all);
    assert!(provider.get_block_receipts((at + 1_000).into()).await.unwrap().is_none(), "no such block");

    // the transaction and its block as the client sees them
    let tx = provider.get_transaction_by_hash(receipt.transaction_hash).await.unwrap().unwrap();
    assert_eq!(tx.block_number, receipt.block_number);
    let full =
        provider.get_block_by_number(receipt.block_number.unwrap().into()).full().await.unwrap().unwrap();
    assert!(full.transactions.hashes().any(|h| h == receipt.transaction_hash));
    let count = IStore::countCall {}.abi_encode();
    let out = provider.call(TransactionRequest::default().with_to(contract).with_input(count)).await.unwrap();
    assert_eq!(U256::from_be_slice(&out), U256::from(1), "the reverted set left count alone");
    assert!(provider.get_balance(me).await.unwrap() < start_balance, "gas was paid");
    node.stop().await;
}
