//! `eth_estimateGas` answers for the block a transaction lands in, not for
//! the last one: a contract whose gas depends on `block.timestamp` having
//! moved since its last write (as a Uniswap V2 pair's price accumulators
//! do), called right after that write with the node's own estimate,
//! succeeds in the next block, a second later.

use std::time::Duration;

use alloy_network::{EthereumWallet, TransactionBuilder};
use alloy_primitives::Address;
use alloy_provider::{Provider, ProviderBuilder};
use alloy_rpc_types_eth::{TransactionReceipt, TransactionRequest};
use alloy_sol_types::{SolCall, SolEvent, sol};

use crate::support::{clock_bin, manual_dev_node, now_ms};

sol! {
    interface IClock {
        function poke() external;
        function pokes() external view returns (uint256);
        event Poked(address indexed who, uint32 timestamp, bool moved);
    }
}

/// Waits for the start of a wall-clock second, so that what follows
/// happens within it.
async fn start_of_a_second() -> u64 {
    let ms = now_ms() % 1000;
    tokio::time::sleep(Duration::from_millis(1000 - ms + 5)).await;
    now_ms() / 1000
}

#[tokio::test(flavor = "multi_thread")]
async fn an_estimate_made_right_after_a_write_is_enough_a_second_later() {
    tokio::time::timeout(Duration::from_secs(120), scenario()).await.expect("scenario finishes in time");
}

async fn scenario() {
    let dir = tempfile::tempdir().unwrap();
    let handle = manual_dev_node(&dir).await;
    let node = handle.node.clone();
    let (signer, _) = shard::dev_accounts().remove(0);
    let url = format!("http://{}", handle.rpc_addr).parse().unwrap();
    let provider = ProviderBuilder::new().wallet(EthereumWallet::from(signer)).connect_http(url);
    let mine = |hash| {
        node.produce_block().unwrap();
        let provider = &provider;
        async move {
            let r: TransactionReceipt =
                provider.get_transaction_receipt(hash).await.unwrap().expect("included");
            r
        }
    };

    let deploy = TransactionRequest::default().with_deploy_code(clock_bin());
    let hash = *provider.send_transaction(deploy).await.unwrap().tx_hash();
    let clock: Address = mine(hash).await.contract_address.unwrap();
    let poke = TransactionRequest::default().with_to(clock).with_input(IClock::pokeCall {}.abi_encode());

    for round in 0..3 {
        // a poke lands in second T
        let t = start_of_a_second().await;
        let hash = *provider.send_transaction(poke.clone().with_gas_limit(300_000)).await.unwrap().tx_hash();
        let first = mine(hash).await;
        assert!(first.status());
        let head = provider.get_block_by_number(first.block_number.unwrap().into()).await.unwrap().unwrap();
        assert_eq!(head.header.timestamp, t, "round {round}: the write's block is in second {t}");
        // estimated at once, still in second T
        let estimate = provider.estimate_gas(poke.clone()).await.unwrap();
        assert_eq!(now_ms() / 1000, t, "round {round}: estimated within the write's second");
        let hash = *provider.send_transaction(poke.clone().with_gas_limit(estimate)).await.unwrap().tx_hash();
        // the next block is made a second later: the timestamp moved
        tokio::time::sleep(Duration::from_millis(1000 - now_ms() % 1000 + 5)).await;
        let second = mine(hash).await;
        assert!(second.status(), "round {round}: the poke sent with the node's estimate ({estimate}) failed");
        let ev = IClock::Poked::decode_log(&second.inner.logs()[0].inner).unwrap();
        assert!(ev.moved && ev.timestamp as u64 > t, "round {round}: it ran in a later second");
        assert!(second.gas_used <= estimate);
    }

    // the estimate is also enough when the block lands in the same second
    let t = start_of_a_second().await;
    let hash = *provider.send_transaction(poke.clone().with_gas_limit(300_000)).await.unwrap().tx_hash();
    mine(hash).await;
    let estimate = provider.estimate_gas(poke.clone()).await.unwrap();
    let hash = *provider.send_transaction(poke.clone().with_gas_limit(estimate)).await.unwrap().tx_hash();
    let same = mine(hash).await;
    let ev = IClock::Poked::decode_log(&same.inner.logs()[0].inner).unwrap();
    if now_ms() / 1000 == t {
        assert!(!ev.moved);
    }
    assert!(same.status());
    let out = provider
        .call(TransactionRequest::default().with_to(clock).with_input(IClock::pokesCall {}.abi_encode()))
        .await
        .unwrap();
    assert_eq!(alloy_primitives::U256::from_be_slice(&out), alloy_primitives::U256::from(8));

    // eth_call with no tag or `pending` runs in the next block, at
    // `latest` in the head's own (as geth answers it): code returning
    // NUMBER and TIMESTAMP tells which
    let head =
        provider.get_block_by_number(alloy_eips::BlockNumberOrTag::Latest).await.unwrap().unwrap().header;
    let code = "0x435f524260205260405ff3"; // NUMBER PUSH0 MSTORE TIMESTAMP PUSH1 32 MSTORE PUSH1 64 PUSH0 RETURN
    let url = format!("http://{}", handle.rpc_addr);
    let call = |tag: Option<&str>| {
        let mut params = vec![serde_json::json!({ "data": code })];
        params.extend(tag.map(|t| serde_json::json!(t)));
        let body = serde_json::json!({"jsonrpc": "2.0", "id": 1, "method": "eth_call", "params": params});
        let url = url.clone();
        async move {
            let v: serde_json::Value =
                reqwest::Client::new().post(&url).json(&body).send().await.unwrap().json().await.unwrap();
            let out = hex::decode(v["result"].as_str().unwrap().trim_start_matches("0x")).unwrap();
            let word = |i: usize| {
                u64::try_from(alloy_primitives::U256::from_be_slice(&out[i * 32..(i + 1) * 32])).unwrap()
            };
            (word(0), word(1))
        }
    };
    let before = now_ms() / 1000;
    for tag in [None, Some("pending")] {
        let (number, timestamp) = call(tag).await;
        assert_eq!(number, head.number + 1, "{tag:?}: the next block's number");
        assert!(timestamp >= before.max(head.timestamp), "{tag:?}: the next block's timestamp");
    }
    assert_eq!(call(Some("latest")).await, (head.number, head.timestamp), "latest: the head's own context");
    handle.stop().await;
}

/// A transaction that reads more than the witness budget optishard had
/// before stf version 4 (80 accounts nobody holds: 368 KiB of witness)
/// gets an estimate like on Ethereum, and lands, succeeding, with no more
/// gas than estimated.
#[tokio::test(flavor = "multi_thread")]
async fn a_transaction_past_the_old_witness_budget_estimates_and_lands() {
    tokio::time::timeout(Duration::from_secs(60), past_the_old_budget()).await.expect("finishes in time");
}

async fn past_the_old_budget() {
    let dir = tempfile::tempdir().unwrap();
    let handle = manual_dev_node(&dir).await;
    let (signer, _) = shard::dev_accounts().remove(0);
    let me = signer.address();
    let url = format!("http://{}", handle.rpc_addr);
    let provider =
        ProviderBuilder::new().wallet(EthereumWallet::from(signer)).connect_http(url.parse().unwrap());
    // BALANCE of 80 accounts nobody holds
    let mut runtime = Vec::new();
    for i in 0..80u32 {
        runtime.push(0x62);
        runtime.extend_from_slice(&(0x10000 + i).to_be_bytes()[1..]);
        runtime.extend_from_slice(&[0x31, 0x50]);
    }
    runtime.push(0x00);
    let mut init =
        vec![0x61, (runtime.len() >> 8) as u8, runtime.len() as u8, 0x80, 0x60, 0x0c, 0x60, 0x00, 0x39];
    init.extend_from_slice(&[0x60, 0x00, 0xf3]);
    init.extend_from_slice(&runtime);
    let deploy = TransactionRequest::default().with_deploy_code(init).with_gas_limit(1_000_000);
    let hash = *provider.send_transaction(deploy).await.unwrap().tx_hash();
    handle.node.produce_block().unwrap();
    let wide = provider.get_transaction_receipt(hash).await.unwrap().unwrap().contract_address.unwrap();

    let call = TransactionRequest::default().from(me).to(wide);
    let estimate = provider.estimate_gas(call.clone()).await.unwrap();
    assert!(estimate > 80 * 2_600, "{estimate}");
    let hash = *provider.send_transaction(call).await.unwrap().tx_hash();
    handle.node.produce_block().unwrap();
    let receipt = provider.get_transaction_receipt(hash).await.unwrap().unwrap();
    assert!(receipt.status(), "{receipt:?}");
    assert!(receipt.gas_used > 80 * 2_600 && receipt.gas_used <= estimate, "{receipt:?}");
    handle.stop().await;
}
