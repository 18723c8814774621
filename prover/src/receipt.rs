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
    /// The receipt's commitment: blake3 of its canonical encoding.
    pub fn hash(&self) -> Hash {
        hash_domain(b"optishard.receipt", &[&self.encode()])
    }
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
