//! Cross-shard messages (DESIGN.md, Cross-shard flow): what a source block's
//! outbox holds and a destination block consumes.

use alloy_primitives::{Address, U256, address};
use serde::{Deserialize, Serialize};

use crate::{Decode, DecodeError, Encode, Hash, MerkleProof, ShardId, hash_domain};

/// The bridge's address on every shard (a precompile: `send`,
/// `sendWithGas`, `messageSender`; see `contracts/IBridge.sol`).
pub const BRIDGE_ADDRESS: Address = address!("0x0000000000000000000000000000000000000B1D");

/// Most call data a message may carry.
pub const MAX_MESSAGE_DATA: usize = 64 * 1024;

/// Destination gas of a message sent with `send` (no explicit limit).
pub const DEFAULT_MESSAGE_GAS: u64 = 100_000;

/// Most destination gas one message may ask for (a destination block must
/// be able to hold it).
pub const MAX_MESSAGE_GAS: u64 = 10_000_000;

/// Gas every delivery spends before the callee runs (Ethereum's intrinsic
/// cost of a call): a message must carry at least this plus its call
/// data's cost (see [`Message::min_gas`]).
pub const MESSAGE_BASE_GAS: u64 = 21_000;

/// What a message does on its destination.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum MessageKind {
    /// Credit `value` to `to` and call it with `data` (from a `send`).
    Call,
    /// Credit `value` to `to`, nothing else: the refund of the failed
    /// message `of`. A refund cannot fail.
    Refund {
        /// The id of the message that failed.
        of: Hash,
    },
}

/// One cross-shard message: `{src, dst, nonce per (src, dst) channel,
/// sender, to, value, gas_limit, data}`. Its id is the blake3 hash of its
/// canonical encoding; the source block's `outbox_root` is the Merkle root
/// of its messages' ids.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    /// Source shard.
    pub src: ShardId,
    /// Destination shard.
    pub dst: ShardId,
    /// Position in the `(src, dst)` channel, from 0.
    pub nonce: u64,
    /// Who sent it on the source (the bridge itself for a refund).
    pub sender: Address,
    /// Whom it credits and calls on the destination.
    pub to: Address,
    /// Wei taken from the sender on the source, credited on the destination.
    pub value: U256,
    /// Gas the destination call may use (paid for on the source).
    pub gas_limit: u64,
    /// Call data.
    pub data: Vec<u8>,
    /// A call or a refund.
    pub kind: MessageKind,
}

impl Message {
    /// The message's identity.
    pub fn id(&self) -> Hash {
        hash_domain(b"optishard.message", &[&self.encode()])
    }

    /// Least gas a message with `data` must carry: the intrinsic cost of
    /// the destination call (Ethereum's calldata pricing, 4 per zero byte,
    /// 16 per other byte).
    pub fn min_gas(data: &[u8]) -> u64 {
        let zeros = data.iter().filter(|b| **b == 0).count() as u64;
        MESSAGE_BASE_GAS + zeros * 4 + (data.len() as u64 - zeros) * 16
    }

    /// The refund of this (failed) message: its value back to its sender,
    /// on the reverse channel at `nonce`.
    pub fn refund(&self, nonce: u64) -> Message {
        Message {
            src: self.dst,
            dst: self.src,
            nonce,
            sender: BRIDGE_ADDRESS,
            to: self.sender,
            value: self.value,
            gas_limit: 0,
            data: Vec::new(),
            kind: MessageKind::Refund { of: self.id() },
        }
    }
}

impl Encode for Message {
    fn encode_to(&self, out: &mut Vec<u8>) {
        self.src.encode_to(out);
        self.dst.encode_to(out);
        self.nonce.encode_to(out);
        self.sender.0.0.encode_to(out);
        self.to.0.0.encode_to(out);
        self.value.to_be_bytes::<32>().encode_to(out);
        self.gas_limit.encode_to(out);
        self.data.encode_to(out);
        match &self.kind {
            MessageKind::Call => 0u8.encode_to(out),
            MessageKind::Refund { of } => {
                1u8.encode_to(out);
                of.encode_to(out);
            }
        }
    }
}

impl Decode for Message {
    fn decode(input: &mut &[u8]) -> Result<Self, DecodeError> {
        let src = ShardId::decode(input)?;
        let dst = ShardId::decode(input)?;
        let nonce = u64::decode(input)?;
        let sender = Address::from(<[u8; 20]>::decode(input)?);
        let to = Address::from(<[u8; 20]>::decode(input)?);
        let value = U256::from_be_bytes(<[u8; 32]>::decode(input)?);
        let gas_limit = u64::decode(input)?;
        let data = Vec::<u8>::decode(input)?;
        if data.len() > MAX_MESSAGE_DATA {
            return Err(DecodeError::TooLong {
                what: "message data",
                len: data.len(),
                limit: MAX_MESSAGE_DATA,
            });
        }
        let kind = match u8::decode(input)? {
            0 => MessageKind::Call,
            1 => MessageKind::Refund { of: Hash::decode(input)? },
            tag => return Err(DecodeError::InvalidTag { what: "message kind", tag }),
        };
        Ok(Message { src, dst, nonce, sender, to, value, gas_limit, data, kind })
    }
}

/// An inbox message as a destination block carries it: the message, the
/// height of the source block that emitted it, and its inclusion proof
/// against that block's `outbox_root` (the beacon-accepted header's).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InboxEntry {
    /// The message.
    pub message: Message,
    /// Height of the source block (on shard `message.src`).
    pub height: u64,
    /// Proof of the message id in the source block's outbox.
    pub proof: MerkleProof,
}

impl InboxEntry {
    /// Checks the entry against the source header's `outbox_root`.
    pub fn verify(&self, outbox_root: &Hash) -> Result<(), crate::ProofError> {
        self.proof.verify(outbox_root, &self.message.id())
    }
}

impl Encode for InboxEntry {
    fn encode_to(&self, out: &mut Vec<u8>) {
        self.message.encode_to(out);
        self.height.encode_to(out);
        self.proof.encode_to(out);
    }
}

impl Decode for InboxEntry {
    fn decode(input: &mut &[u8]) -> Result<Self, DecodeError> {
        Ok(InboxEntry {
            message: Message::decode(input)?,
            height: u64::decode(input)?,
            proof: MerkleProof::decode(input)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode_exact;

    fn message() -> Message {
        Message {
            src: ShardId(0),
            dst: ShardId(2),
            nonce: 7,
            sender: Address::repeat_byte(1),
            to: Address::repeat_byte(2),
            value: U256::from(10u64).pow(U256::from(18u64)),
            gas_limit: DEFAULT_MESSAGE_GAS,
            data: vec![0, 1, 2],
            kind: MessageKind::Call,
        }
    }

    #[test]
    fn messages_round_trip_and_every_field_changes_the_id() {
        let m = message();
        assert_eq!(decode_exact::<Message>(&m.encode()).unwrap(), m);
        let r = m.refund(3);
        assert_eq!(decode_exact::<Message>(&r.encode()).unwrap(), r);
        assert_eq!((r.src, r.dst, r.to, r.value), (m.dst, m.src, m.sender, m.value));
        let changes: [fn(&mut Message); 9] = [
            |m| m.src = ShardId(1),
            |m| m.dst = ShardId(3),
            |m| m.nonce += 1,
            |m| m.sender = Address::repeat_byte(9),
            |m| m.to = Address::repeat_byte(9),
            |m| m.value += U256::from(1),
            |m| m.gas_limit += 1,
            |m| m.data.push(0),
            |m| m.kind = MessageKind::Refund { of: Hash::ZERO },
        ];
        for change in changes {
            let mut other = m.clone();
            change(&mut other);
            assert_ne!(other.id(), m.id());
        }
    }

    #[test]
    fn hostile_message_bytes_fail_cleanly() {
        let mut bytes = message().encode();
        let tag = bytes.len() - 1;
        bytes[tag] = 9;
        assert!(decode_exact::<Message>(&bytes).is_err());
        // call data past the bound
        let mut big = message();
        big.data = vec![1; MAX_MESSAGE_DATA + 1];
        assert!(decode_exact::<Message>(&big.encode()).is_err());
        assert_eq!(Message::min_gas(&[0, 1]), 21_000 + 4 + 16);
    }
}
