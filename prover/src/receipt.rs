use alloy_primitives::{Address, B256, Bytes, Log};
use bridge::{Decode, DecodeError, Encode, Hash, hash_domain};
use serde::{Deserialize, Serialize};

/// What executing one item produced. Committed to by the block's
/// `receipts_root` and the trace commitments.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Receipt {
    /// The item's hash (the Ethereum transaction hash for a transaction).
    pub tx_hash: B256,
    /// EIP-2718 type of the transaction.
    pub tx_type: u8,
    /// Whether execution succeeded (reverts and halts are failures).
    pub success: bool,
    /// Gas charged to the sender.
    pub gas_used: u64,
    /// Logs emitted (none on failure).
    pub logs: Vec<Log>,
    /// Address of the contract created, for a successful creation.
    pub contract_address: Option<Address>,
    /// Return or revert data (not committed; kept for clients).
    #[serde(default)]
    pub output: Bytes,
    /// Ids of the messages the item emitted (a failed message's refund),
    /// in outbox order.
    #[serde(default)]
    pub messages: Vec<Hash>,
}

impl Receipt {
    /// The receipt's commitment (`stf_version` 3): its fields, with the
    /// logs by the hash chain and count the level-2 machine's journal
    /// keeps of them (so the epilogue's step computes it without carrying
    /// the logs' data).
    pub fn hash(&self) -> Hash {
        receipt_hash(&ReceiptParts {
            tx_hash: self.tx_hash,
            tx_type: self.tx_type,
            success: self.success,
            gas_used: self.gas_used,
            contract_address: self.contract_address,
            logs: extend_logs(Hash::ZERO, &self.logs),
            logs_count: self.logs.len() as u64,
            messages: &self.messages,
        })
    }
}

/// What a receipt's hash commits to.
pub(crate) struct ReceiptParts<'a> {
    pub(crate) tx_hash: B256,
    pub(crate) tx_type: u8,
    pub(crate) success: bool,
    pub(crate) gas_used: u64,
    pub(crate) contract_address: Option<Address>,
    /// The logs' hash chain ([`extend_logs`]) and their count.
    pub(crate) logs: Hash,
    pub(crate) logs_count: u64,
    pub(crate) messages: &'a [Hash],
}

/// A receipt's hash from its parts.
pub(crate) fn receipt_hash(p: &ReceiptParts<'_>) -> Hash {
    let mut out = Vec::with_capacity(128);
    p.tx_hash.0.encode_to(&mut out);
    p.tx_type.encode_to(&mut out);
    p.success.encode_to(&mut out);
    p.gas_used.encode_to(&mut out);
    p.contract_address.map(|a| a.0.0).encode_to(&mut out);
    p.logs.0.encode_to(&mut out);
    p.logs_count.encode_to(&mut out);
    bridge::encode_list(p.messages, &mut out);
    hash_domain(b"optishard.receipt", &[&out])
}

/// The hash of one log in a logs' chain (`stf_version` 5): its address,
/// topics, and its data by length and Keccak-256, which the level-2
/// machine absorbs a part at a time for a long log.
fn log_hash(log: &Log) -> Hash {
    log_leaf(
        &log.address,
        log.data.topics(),
        &alloy_primitives::keccak256(&log.data.data),
        log.data.data.len() as u64,
    )
}

/// A log's hash from its parts.
pub(crate) fn log_leaf(address: &Address, topics: &[B256], data_hash: &B256, data_len: u64) -> Hash {
    let topics: Vec<u8> = topics.iter().flat_map(|t| t.0).collect();
    hash_domain(
        b"optishard.log",
        &[
            address.as_slice(),
            &[(topics.len() / 32) as u8],
            &topics,
            data_hash.as_slice(),
            &data_len.to_be_bytes(),
        ],
    )
}

/// The logs' chain over `below` extended by one log's hash.
pub(crate) fn extend_log(below: Hash, leaf: Hash) -> Hash {
    hash_domain(b"optishard.logs", &[&below.0, &leaf.0])
}

/// The logs' chain over `below` extended by `logs`.
pub(crate) fn extend_logs(below: Hash, logs: &[Log]) -> Hash {
    logs.iter().fold(below, |below, log| extend_log(below, log_hash(log)))
}

impl Encode for Receipt {
    fn encode_to(&self, out: &mut Vec<u8>) {
        self.tx_hash.0.encode_to(out);
        self.tx_type.encode_to(out);
        self.success.encode_to(out);
        self.gas_used.encode_to(out);
        self.contract_address.map(|a| a.0.0).encode_to(out);
        (self.logs.len() as u32).encode_to(out);
        for log in &self.logs {
            log.address.0.0.encode_to(out);
            (log.data.topics().len() as u32).encode_to(out);
            for t in log.data.topics() {
                t.0.encode_to(out);
            }
            log.data.data.to_vec().encode_to(out);
        }
        bridge::encode_list(&self.messages, out);
    }
}

impl Decode for Receipt {
    /// Decodes the committed fields; `output` comes back empty.
    fn decode(input: &mut &[u8]) -> Result<Self, DecodeError> {
        let tx_hash = B256::from(<[u8; 32]>::decode(input)?);
        let tx_type = u8::decode(input)?;
        let success = bool::decode(input)?;
        let gas_used = u64::decode(input)?;
        let contract_address = Option::<[u8; 20]>::decode(input)?.map(Address::from);
        let n = u32::decode(input)? as usize;
        let mut logs = Vec::with_capacity(n.min(input.len() / 24));
        for _ in 0..n {
            let address = Address::from(<[u8; 20]>::decode(input)?);
            let t = u32::decode(input)? as usize;
            let mut topics = Vec::with_capacity(t.min(4));
            for _ in 0..t {
                topics.push(B256::from(<[u8; 32]>::decode(input)?));
            }
            let data = Bytes::from(Vec::<u8>::decode(input)?);
            logs.push(Log::new_unchecked(address, topics, data));
        }
        let messages = bridge::decode_list(input)?;
        Ok(Receipt {
            tx_hash,
            tx_type,
            success,
            gas_used,
            logs,
            contract_address,
            output: Bytes::new(),
            messages,
        })
    }
}
