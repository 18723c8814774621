//! Bad input over raw JSON-RPC gets the error an Ethereum node gives, changes
//! nothing, and the node stays up.

use std::time::Duration;

use alloy_consensus::{SignableTransaction, TxEip1559, TxEnvelope};
use alloy_eips::eip2718::Encodable2718;
use alloy_primitives::{Address, Bytes, TxKind, U256};
use alloy_signer::SignerSync;
use alloy_signer_local::PrivateKeySigner;
use serde_json::{Value, json};

use crate::support::dev_node;

struct Client {
    http: reqwest::Client,
    url: String,
}

impl Client {
    async fn raw(&self, body: String) -> (u16, Value) {
        let resp = self
            .http
            .post(&self.url)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
    }

    async fn call(&self, method: &str, params: Value) -> Value {
        let body = json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}).to_string();
        self.raw(body).await.1
    }

    async fn error(&self, method: &str, params: Value) -> (i64, String) {
        let v = self.call(method, params).await;
        let e = v.get("error").unwrap_or_else(|| panic!("{method} should fail, got {v}"));
        (e["code"].as_i64().unwrap(), e["message"].as_str().unwrap().to_string())
    }

    async fn nonce(&self, a: Address) -> Value {
        self.call("eth_getTransactionCount", json!([a, "pending"])).await["result"].clone()
    }
}

fn signed(signer: &PrivateKeySigner, chain_id: u64, nonce: u64, gas: u64, value: U256) -> TxEnvelope {
    let tx = TxEip1559 {
        chain_id,
        nonce,
        gas_limit: gas,
        max_fee_per_gas: 10_000_000_000,
        max_priority_fee_per_gas: 1_000_000_000,
        to: TxKind::Call(Address::repeat_byte(0x42)),
        value,
        access_list: Default::default(),
        input: Bytes::new(),
    };
    let sig = signer.sign_hash_sync(&tx.signature_hash()).unwrap();
    TxEnvelope::from(tx.into_signed(sig))
}

fn hex_tx(tx: &TxEnvelope) -> String {
    format!("0x{}", hex::encode(tx.encoded_2718()))
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_input_gets_ethereum_errors_and_changes_nothing() {
    tokio::time::timeout(Duration::from_secs(120), scenario()).await.expect("finishes in time");
}

async fn scenario() {
    let dir = tempfile::tempdir().unwrap();
    let node = dev_node(&dir).await;
    let c = Client { http: reqwest::Client::new(), url: format!("http://{}", node.rpc_addr) };
    let (signer, acct) = shard::dev_accounts().remove(1);
    let me = acct.address;
    let before = c.nonce(me).await;

    // undecodable and non-hex raw transactions
    let (code, msg) = c.error("eth_sendRawTransaction", json!(["0x1234"])).await;
    assert_eq!(code, -32000);
    assert!(msg.starts_with("rlp:"), "{msg}");
    let (code, _) = c.error("eth_sendRawTransaction", json!(["0xzz"])).await;
    assert_eq!(code, -32602);
    // over 128 KiB: refused by its length before anything is decoded
    let big = format!("0x{}", "02".repeat(prover::MAX_TX_BYTES + 1));
    let (code, msg) = c.error("eth_sendRawTransaction", json!([big])).await;
    assert_eq!((code, msg.contains("exceeds the limit of 131072")), (-32000, true), "{msg}");

    // wrong chain id
    let (code, msg) =
        c.error("eth_sendRawTransaction", json!([hex_tx(&signed(&signer, 1, 0, 21_000, U256::ZERO))])).await;
    assert_eq!((code, msg.starts_with("invalid chain id")), (-32000, true), "{msg}");

    // a signature that recovers to no key: r is not a curve x-coordinate
    let good = signed(&signer, 31_337, 0, 21_000, U256::ZERO);
    let TxEnvelope::Eip1559(s) = &good else { unreachable!() };
    let bad_sig =
        alloy_primitives::Signature::new(U256::MAX - U256::from(1), s.signature().s(), s.signature().v());
    let forged = TxEnvelope::from(s.tx().clone().into_signed(bad_sig));
    let (code, msg) = c.error("eth_sendRawTransaction", json!([hex_tx(&forged)])).await;
    assert_eq!((code, msg.as_str()), (-32000, "invalid sender"));

    // gas below intrinsic
    let (code, msg) = c
        .error("eth_sendRawTransaction", json!([hex_tx(&signed(&signer, 31_337, 0, 20_999, U256::ZERO))]))
        .await;
    assert_eq!((code, msg.starts_with("intrinsic gas too low")), (-32000, true), "{msg}");

    // insufficient funds, from an account with nothing
    let poor = PrivateKeySigner::random();
    let (code, msg) = c
        .error("eth_sendRawTransaction", json!([hex_tx(&signed(&poor, 31_337, 0, 21_000, U256::from(1)))]))
        .await;
    assert_eq!(
        (code, msg.starts_with("insufficient funds for gas * price + value")),
        (-32000, true),
        "{msg}"
    );

    // none of that reached the pool
    assert_eq!(c.nonce(me).await, before);

    // nonce too low: include nonce 0, then replay a different nonce-0 transaction
    let v = c.call("eth_sendRawTransaction", json!([hex_tx(&good)])).await;
    let hash = v["result"].as_str().unwrap_or_else(|| panic!("{v}")).to_string();
    let (code, msg) = c.error("eth_sendRawTransaction", json!([hex_tx(&good)])).await;
    assert_eq!((code, msg.as_str()), (-32000, "already known"));
    let mut mined = false;
    for _ in 0..100 {
        if !c.call("eth_getTransactionReceipt", json!([hash])).await["result"].is_null() {
            mined = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(mined);
    let again = signed(&signer, 31_337, 0, 21_000, U256::from(7));
    let (code, msg) = c.error("eth_sendRawTransaction", json!([hex_tx(&again)])).await;
    assert_eq!((code, msg.starts_with("nonce too low")), (-32000, true), "{msg}");

    // unknown method, malformed params, truncated JSON, oversized request
    let (code, _) = c.error("eth_noSuchMethod", json!([])).await;
    assert_eq!(code, -32601);
    let (code, _) = c.error("eth_getBalance", json!(["not an address", "latest"])).await;
    assert_eq!(code, -32602);
    let (code, _) = c.error("eth_getBlockByNumber", json!([])).await;
    assert_eq!(code, -32602);
    let (_, v) = c.raw(r#"{"jsonrpc":"2.0","id":1,"method":"eth_blockNu"#.to_string()).await;
    assert_eq!(v["error"]["code"], -32700, "{v}");
    let huge = format!(
        r#"{{"jsonrpc":"2.0","id":1,"method":"eth_sendRawTransaction","params":["0x{}"]}}"#,
        "ab".repeat(1 << 20)
    );
    // the server answers 413 / -32007, or, when it stops reading the body
    // early, closes the connection while the client is still writing
    let resp = c.http.post(&c.url).header("content-type", "application/json").body(huge).send().await;
    match resp {
        Ok(r) => {
            let status = r.status().as_u16();
            let v: Value = r.json().await.unwrap_or(Value::Null);
            assert!(status == 413 || v["error"]["code"] == -32007, "oversized: {status} {v}");
        }
        Err(e) => assert!(e.is_request() || e.is_body(), "oversized request failed oddly: {e}"),
    }

    // hostile numbers: ranges near u64::MAX, huge counts and fee fields
    let max = format!("{:#x}", u64::MAX);
    let near = format!("{:#x}", u64::MAX - 1);
    let v = c.call("eth_getBlockByNumber", json!([max, false])).await;
    assert!(v["result"].is_null() && v.get("error").is_none(), "no such block, as geth answers: {v}");
    let v = c.call("eth_getLogs", json!([{"fromBlock": near, "toBlock": max}])).await;
    assert_eq!(v["result"], json!([]), "{v}");
    let v = c.call("eth_getLogs", json!([{"fromBlock": "0x0", "toBlock": max}])).await;
    assert!(v["result"].is_array() || v["error"]["code"] == -32000, "{v}");
    let huge_fees = json!([{
        "from": me, "to": Address::repeat_byte(1), "gas": max,
        "maxFeePerGas": format!("{:#x}", u128::MAX), "maxPriorityFeePerGas": format!("{:#x}", u128::MAX),
        "value": format!("{:#x}", U256::MAX),
    }, "latest"]);
    let v = c.call("eth_call", huge_fees.clone()).await;
    assert!(v["error"].is_object(), "{v}");
    let v = c.call("eth_estimateGas", huge_fees).await;
    assert!(v["error"].is_object(), "{v}");
    let v = c
        .call("eth_call", json!([{"from": me, "to": me, "gasPrice": format!("{:#x}", u128::MAX)}, "latest"]))
        .await;
    assert!(v["error"].is_object() || v["result"].is_string(), "{v}");
    let (code, _) = c.error("eth_getBalance", json!([me, format!("0x1{}", "0".repeat(40))])).await;
    assert_eq!(code, -32602, "a block number past u64 is invalid params");
    let v = c.call("eth_feeHistory", json!([max, "latest", [1.0, 99.0]])).await;
    assert!(v["error"].is_object() || v["result"].is_object(), "{v}");

    // the node is still up and the valid transaction is the only change
    let v = c.call("eth_blockNumber", json!([])).await;
    assert!(v["result"].is_string(), "{v}");
    assert_eq!(c.nonce(me).await, json!("0x1"));
    node.stop().await;
}
