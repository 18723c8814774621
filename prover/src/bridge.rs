//! The bridge precompile at [`BRIDGE_ADDRESS`]: how a transaction or
//! contract sends a cross-shard message, and how a delivered call learns
//! who sent it.
//!
//! A precompile (not bytecode) so the rules live in Rust beside the
//! executor, every write goes through revm's journal (a reverting caller
//! sends nothing: the channel counter, the burn and the `MessageSent` log
//! all roll back with it), and everything it reads (the channel counters
//! in the bridge account's storage) is recorded like any other read, so a
//! witness of the item carries it.
//!
//! Rules (ABI in `contracts/IBridge.sol` and `contracts/IBridge.json`):
//! - `send(dst, to, data)` = `sendWithGas(dst, to, DEFAULT_MESSAGE_GAS, data)`.
//! - `sendWithGas` reverts, sending nothing, when `dst` is not a shard or
//!   is this shard, when `data` exceeds [`MAX_MESSAGE_DATA`], or when
//!   `gasLimit` is below the delivery's intrinsic cost
//!   ([`Message::min_gas`]) or above [`MAX_MESSAGE_GAS`]; and when called
//!   other than by a plain `CALL` (static, delegate or callcode).
//! - The destination's gas is bought on the source: the call costs
//!   [`SEND_GAS`] + [`SEND_GAS_PER_BYTE`] per data byte + `gasLimit`, paid
//!   at the source transaction's gas price (the base fee part burned like
//!   any gas). The destination runs the message without charging anyone.
//! - `msg.value` leaves the sender and is burned on the source (the bridge
//!   account's balance stays zero); the destination mints it to `to`.
//! - The channel counter `(this shard → dst)` is storage slot `dst` of the
//!   bridge account; the message's nonce is its value before the send.
//! - `messageSender()` returns `(src, sender)` inside a delivered call and
//!   reverts outside one.

use alloy_primitives::{Address, B256, Bytes, Log, U256};
use alloy_sol_types::{SolCall, SolError, SolEvent, SolValue};
use bridge::{
    BRIDGE_ADDRESS, DEFAULT_MESSAGE_GAS, MAX_MESSAGE_DATA, MAX_MESSAGE_GAS, Message, MessageKind, ShardId,
};
use revm::Database;
use revm::context::Cfg;
use revm::context_interface::journaled_state::account::JournaledAccountTr;
use revm::context_interface::{ContextTr, JournalTr};
use revm::handler::{EthPrecompiles, PrecompileProvider};
use revm::interpreter::{CallInputs, CallScheme, Gas, InstructionResult, InterpreterResult};
use revm::primitives::AddressSet;
use revm::primitives::hardfork::SpecId;

// the published ABI (`contracts/IBridge.json`, compiled from
// `contracts/IBridge.sol`) is the one source of the bridge's interface; the
// generated event constructor takes one argument per field
#[allow(clippy::too_many_arguments, missing_docs)]
mod abi {
    alloy_sol_types::sol!(IBridge, "../contracts/IBridge.json");
}
pub use abi::IBridge;

/// Gas of a send besides the destination gas and the data: the channel
/// counter's storage write and the log.
pub const SEND_GAS: u64 = 30_000;
/// Gas per byte of a message's data (the log carries it).
pub const SEND_GAS_PER_BYTE: u64 = 16;
/// Gas of `messageSender()`.
pub const MESSAGE_SENDER_GAS: u64 = 200;

/// The storage slot of the bridge account holding the next nonce of the
/// channel to `dst`.
pub fn channel_slot(dst: ShardId) -> U256 {
    U256::from(dst.0)
}

/// The accounts every shard's genesis holds besides the funded ones: the
/// bridge, with nonce 1 so it is never "empty" (EIP-161 would otherwise
/// delete it, channel counters and all, whenever a call touches it).
pub fn system_accounts() -> crate::ChangeSet {
    let bridge = crate::AccountState { nonce: 1, ..Default::default() };
    [(crate::StateKey::Account(BRIDGE_ADDRESS), Some(bridge.encode()))].into_iter().collect()
}

/// The messages in `logs` (those the bridge emitted), in order.
pub fn messages_in(logs: &[Log], src: ShardId) -> Vec<Message> {
    logs.iter()
        .filter(|l| l.address == BRIDGE_ADDRESS)
        .filter_map(|l| IBridge::MessageSent::decode_log(l).ok())
        .map(|l| l.data)
        .map(|e| Message {
            src,
            dst: ShardId(e.dstShard),
            nonce: e.nonce,
            sender: e.sender,
            to: e.to,
            value: e.value,
            gas_limit: e.gasLimit,
            data: e.data.to_vec(),
            kind: MessageKind::Call,
        })
        .collect()
}

/// The log announcing `m` (what [`messages_in`] reads back).
pub fn message_log(m: &Message) -> Log {
    let event = IBridge::MessageSent {
        id: B256::from(m.id().0),
        dstShard: m.dst.0,
        sender: m.sender,
        to: m.to,
        value: m.value,
        nonce: m.nonce,
        gasLimit: m.gas_limit,
        data: Bytes::from(m.data.clone()),
    };
    Log { address: BRIDGE_ADDRESS, data: event.encode_log_data() }
}

/// Ethereum's precompiles plus the bridge, for one shard.
#[derive(Clone, Debug)]
pub struct ShardPrecompiles {
    eth: EthPrecompiles,
    warm: AddressSet,
    shard: ShardId,
    shards: u32,
    /// `(src, sender)` of the message being delivered, if any.
    pub delivering: Option<(ShardId, Address)>,
    /// For a level-2 step only, a long-input call to SHA-256, RIPEMD-160
    /// or identity: the precompile charges its gas (its input's length
    /// priced as Ethereum prices it) and, if that succeeds, gives these
    /// bytes without reading its input, which earlier sub-steps absorbed
    /// (the step carries only a part of it). Never set when executing
    /// blocks.
    pub(crate) charged: Option<Bytes>,
    /// Whether the last such charge succeeded (the level-2 verifier's
    /// first sub-step of a long-input call asks).
    pub(crate) charged_ok: Option<bool>,
}

impl ShardPrecompiles {
    /// The precompiles of `shard` in a network of `shards`.
    pub fn new(spec: SpecId, shard: ShardId, shards: u32) -> Self {
        let eth = EthPrecompiles::new(spec);
        let mut warm = eth.warm_addresses().clone();
        warm.insert(BRIDGE_ADDRESS);
        ShardPrecompiles { eth, warm, shard, shards, delivering: None, charged: None, charged_ok: None }
    }

    /// The addresses a transaction starts warm: Ethereum's precompiles
    /// and the bridge.
    pub fn addresses(&self) -> &AddressSet {
        &self.warm
    }

    fn bridge<CTX: ContextTr>(
        &mut self,
        ctx: &mut CTX,
        inputs: &CallInputs,
    ) -> Result<InterpreterResult, String>
    where
        <CTX::Db as Database>::Error: std::fmt::Display,
    {
        let input = inputs.input.bytes(ctx);
        let mut gas = Gas::new(inputs.gas_limit);
        let selector = input.get(..4).unwrap_or_default();
        if selector == IBridge::messageSenderCall::SELECTOR {
            if !gas.record_regular_cost(MESSAGE_SENDER_GAS) {
                return Ok(oog(inputs.gas_limit));
            }
            if !inputs.value.get().is_zero() {
                // value sent here would be lost: the bridge keeps none
                return Ok(revert("messageSender: takes no value", gas));
            }
            return Ok(match self.delivering {
                Some((src, sender)) => InterpreterResult::new(
                    InstructionResult::Return,
                    (src.0, sender).abi_encode_params().into(),
                    gas,
                ),
                None => revert("messageSender: not inside a delivered message", gas),
            });
        }
        let (dst, to, gas_limit, data) = if selector == IBridge::sendCall::SELECTOR {
            match IBridge::sendCall::abi_decode(&input) {
                Ok(c) => (c.dstShard, c.to, DEFAULT_MESSAGE_GAS, c.data),
                Err(_) => return Ok(revert("send: malformed call data", gas)),
            }
        } else if selector == IBridge::sendWithGasCall::SELECTOR {
            match IBridge::sendWithGasCall::abi_decode(&input) {
                Ok(c) => (c.dstShard, c.to, c.gasLimit, c.data),
                Err(_) => return Ok(revert("sendWithGas: malformed call data", gas)),
            }
        } else {
            return Ok(revert("bridge: unknown function", gas));
        };
        if inputs.scheme != CallScheme::Call || inputs.is_static || inputs.target_address != BRIDGE_ADDRESS {
            return Ok(revert("send: only a plain CALL may send", gas));
        }
        if dst >= self.shards || dst == self.shard.0 {
            return Ok(revert("send: unknown destination shard", gas));
        }
        if data.len() > MAX_MESSAGE_DATA {
            return Ok(revert("send: data too long", gas));
        }
        if gas_limit < Message::min_gas(&data) || gas_limit > MAX_MESSAGE_GAS {
            return Ok(revert("send: gas limit out of range", gas));
        }
        let cost = SEND_GAS + SEND_GAS_PER_BYTE * data.len() as u64 + gas_limit;
        if !gas.record_regular_cost(cost) {
            return Ok(oog(inputs.gas_limit));
        }
        let dst = ShardId(dst);
        let value = inputs.value.get();
        let journal = ctx.journal_mut();
        let db = |e: <CTX::Db as Database>::Error| e.to_string();
        journal.load_account(BRIDGE_ADDRESS).map_err(db)?;
        let slot = channel_slot(dst);
        let nonce = journal.sload(BRIDGE_ADDRESS, slot).map_err(db)?.data;
        let nonce = u64::try_from(nonce).map_err(|_| "channel nonce overflow".to_string())?;
        journal.sstore(BRIDGE_ADDRESS, slot, U256::from(nonce + 1)).map_err(db)?;
        // the value arrived with the call: burned here, minted on delivery
        if !journal.load_account_mut(BRIDGE_ADDRESS).map_err(db)?.data.decr_balance(value) {
            // cannot happen (the value arrived with this call), but a
            // message that leaves unburned would mint on delivery
            return Ok(revert("send: value not received", gas));
        }
        let message = Message {
            src: self.shard,
            dst,
            nonce,
            sender: inputs.caller,
            to,
            value,
            gas_limit,
            data: data.to_vec(),
            kind: MessageKind::Call,
        };
        journal.log(message_log(&message));
        let id = B256::from(message.id().0);
        Ok(InterpreterResult::new(InstructionResult::Return, id.abi_encode().into(), gas))
    }
}

/// The base and per-word gas of SHA-256, RIPEMD-160 and identity (the
/// precompiles whose price is linear in their input, as revm's
/// `hash::sha256_run`, `hash::ripemd160_run` and `identity::identity_run`
/// charge it).
fn linear_price(address: &Address) -> Option<(u64, u64)> {
    match address {
        a if *a == Address::with_last_byte(2) => Some((60, 12)),
        a if *a == Address::with_last_byte(3) => Some((600, 120)),
        a if *a == Address::with_last_byte(4) => {
            Some((revm::precompile::identity::IDENTITY_BASE, revm::precompile::identity::IDENTITY_PER_WORD))
        }
        _ => None,
    }
}

fn revert(reason: &str, gas: Gas) -> InterpreterResult {
    let output = alloy_sol_types::Revert::from(reason).abi_encode();
    InterpreterResult::new(InstructionResult::Revert, output.into(), gas)
}

fn oog(limit: u64) -> InterpreterResult {
    let mut gas = Gas::new(limit);
    gas.spend_all();
    InterpreterResult::new(InstructionResult::PrecompileOOG, Bytes::new(), gas)
}

impl<CTX: ContextTr> PrecompileProvider<CTX> for ShardPrecompiles
where
    <CTX::Db as Database>::Error: std::fmt::Display,
{
    type Output = InterpreterResult;

    fn set_spec(&mut self, spec: <CTX::Cfg as Cfg>::Spec) -> bool {
        let changed = <EthPrecompiles as PrecompileProvider<CTX>>::set_spec(&mut self.eth, spec);
        if changed {
            self.warm = self.eth.warm_addresses().clone();
            self.warm.insert(BRIDGE_ADDRESS);
        }
        changed
    }

    fn run(&mut self, context: &mut CTX, inputs: &CallInputs) -> Result<Option<InterpreterResult>, String> {
        if inputs.bytecode_address == BRIDGE_ADDRESS {
            return self.bridge(context, inputs).map(Some);
        }
        if let Some(output) = &self.charged
            && let Some((base, word)) = linear_price(&inputs.bytecode_address)
        {
            let cost = revm::precompile::calc_linear_cost(inputs.input.len(), base, word);
            let result = if cost > inputs.gas_limit {
                Err(revm::precompile::PrecompileHalt::OutOfGas)
            } else {
                Ok(revm::precompile::EthPrecompileOutput::new(cost, output.clone()))
            };
            let output = revm::precompile::PrecompileOutput::from_eth_result(result, inputs.reservoir);
            let result = revm::handler::precompile_output_to_interpreter_result(output, inputs.gas_limit);
            self.charged_ok = Some(result.result.is_ok());
            return Ok(Some(result));
        }
        self.eth.run(context, inputs)
    }

    fn warm_addresses(&self) -> &AddressSet {
        &self.warm
    }

    fn contains(&self, address: &Address) -> bool {
        self.warm.contains(address)
    }
}
