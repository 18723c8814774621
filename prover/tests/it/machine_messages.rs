//! Call messages at level 2 (`stf_version` 5): a delivered call's trace is
//! its prologue (the channel's next message, run from the bridge), its
//! instructions (the bridge answering `messageSender()`), a delivery's
//! epilogue (no fee, the bridge's balance and nonce restored, the inbound
//! counter bumped, a failed call's refund) and its commits, ending on
//! level 1's `c_i`. So a message, like a transaction, needs no witness
//! budget: a delivered call touching hundreds of slots runs as it would
//! on Ethereum.

use alloy_primitives::{Address, U256};
use alloy_sol_types::SolCall;
use bridge::game::StepVerdict;
use bridge::{BRIDGE_ADDRESS, Message, MessageKind, ShardId};
use prover::machine::{ItemStep, item_trace};
use prover::{IBridge, Item, StateKey};

use crate::machine::{TARGET, state};
use crate::machine_game::{first_disputed, liar, play_item, repeat, towards};
use crate::machine_settle::walk_item;
use crate::support::params;

const REVERTER: Address = Address::repeat_byte(0xc3);
const ASKER: Address = Address::repeat_byte(0xc4);

/// A call message from shard 1 to `to` on shard 0 (the tests' shard).
fn message(nonce: u64, to: Address, value: u64, gas_limit: u64) -> Message {
    Message {
        src: ShardId(1),
        dst: ShardId(0),
        nonce,
        sender: Address::repeat_byte(0xab),
        to,
        value: U256::from(value),
        gas_limit,
        data: vec![],
        kind: MessageKind::Call,
    }
}

/// A contract writing 120 fresh slots (more state than the 320 KiB
/// witness budget of `stf_version` 4 let a message touch); one that
/// reverts; one that stores what the bridge's `messageSender()` answers.
fn contracts() -> Vec<crate::machine::Contract> {
    let writer = repeat(120, &[0x80, 0x80, 0x55]);
    let reverter = vec![0x60, 0x00, 0x60, 0x00, 0xfd];
    // MSTORE the selector, STATICCALL the bridge into [0, 64), SSTORE both words
    let selector = IBridge::messageSenderCall::SELECTOR;
    let mut asker = vec![0x63];
    asker.extend(selector);
    asker.extend([0x60, 0xe0, 0x1b, 0x60, 0x00, 0x52]);
    asker.extend([0x60, 0x40, 0x60, 0x00, 0x60, 0x04, 0x60, 0x00, 0x73]);
    asker.extend(BRIDGE_ADDRESS.as_slice());
    asker.extend([
        0x5a, 0xfa, 0x50, 0x60, 0x00, 0x51, 0x60, 0x01, 0x55, 0x60, 0x20, 0x51, 0x60, 0x02, 0x55, 0x00,
    ]);
    vec![(TARGET, writer, vec![]), (REVERTER, reverter, vec![]), (ASKER, asker, vec![])]
}

/// Each kind of delivered call, decided step by step: every step of its
/// trace is upheld and the trace ends on level 1's `c_1` — a call writing
/// 120 fresh slots with value (which the witness budget used to refund),
/// a call that reverts (refunded to its sender by a message back), a call
/// asking the bridge who sent it.
#[test]
fn a_delivered_call_is_decided_at_level_two() {
    let s = state(&contracts());
    for (name, m, success) in [
        ("120 fresh slots with value", message(0, TARGET, 5, 4_000_000), true),
        ("a revert", message(0, REVERTER, 7, 100_000), false),
        ("messageSender()", message(0, ASKER, 0, 200_000), true),
    ] {
        let item = Item::Message(m.clone());
        let exec = crate::machine::level_one_item(&s, 0, &item);
        let o = &exec.outcomes[0];
        assert_eq!(o.receipt.success, success, "{name}: {:?}", String::from_utf8_lossy(&o.receipt.output));
        if success {
            assert!(o.messages.is_empty());
        } else {
            assert_eq!(o.messages, vec![m.refund(0)], "{name}: the value goes back");
        }
        if name.starts_with("120") {
            let written =
                o.changes.keys().filter(|k| matches!(k, StateKey::Storage(a, _) if *a == TARGET)).count();
            assert_eq!(written, 120, "{name}: every slot is written");
        }
        if name == "messageSender()" {
            let asked = o.changes.get(&StateKey::Storage(ASKER, U256::from(1))).cloned().flatten();
            assert_eq!(asked, Some(prover::encode_slot(U256::from(1))), "{name}: the source shard");
        }
        let (_, n) = walk_item(&s, 0, &item);
        assert!(n > 0, "{name}: it runs instructions");
    }
}

/// A message that is not its channel's next has no level-2 trace: its
/// prologue is refused.
#[test]
fn a_message_out_of_order_has_no_prologue() {
    use prover::machine::{InstructionVerdict, StepEnv, item_step, verify_item_step};
    let s = state(&contracts());
    let item = Item::Message(message(1, TARGET, 0, 4_000_000));
    let pre = bridge::TraceState::start();
    let step = item_step(s.reader(0).unwrap(), &params(1), &item, &pre, 0).unwrap();
    let env = StepEnv::new(params(1), &item, bridge::TraceCommitment::start(s.root(0).unwrap()));
    let start = prover::machine::start_state(&env.pre, &env.item);
    assert!(matches!(verify_item_step(&step, &start, &env), InstructionVerdict::Rejected(_)));
}

/// In the game: a lie in a delivered call's instructions and at its
/// epilogue (the bridge's restored balance, the refund) is refuted by the
/// step there; an honest defender a griefer drives there wins.
#[test]
fn a_lie_in_a_delivery_is_refuted_and_the_truth_upheld() {
    let s = state(&contracts());
    for (name, m) in
        [("a call", message(0, TARGET, 5, 4_000_000)), ("a refund", message(0, REVERTER, 7, 100_000))]
    {
        let item = Item::Message(m);
        let head =
            item_trace(s.reader(0).unwrap(), &params(1), &item, &bridge::TraceState::start(), &[]).unwrap();
        let n = head.instructions;
        for (at, kind) in [(n / 2, "instruction"), (n + 1, "epilogue")] {
            let lied = play_item(&s, &item, 8, &liar(at), &first_disputed);
            let shown = match &lied.step {
                ItemStep::Instruction(_) => "instruction",
                ItemStep::Epilogue(_) => "epilogue",
                _ => "another",
            };
            assert_eq!(shown, kind, "{name}: the step at the lie");
            assert!(matches!(lied.verdict, StepVerdict::Refuted { .. }), "{name} {kind}: {:?}", lied.verdict);
            let honest = play_item(&s, &item, 8, &|_, truth| truth, &towards(at));
            assert_eq!(honest.step, lied.step, "{name} {kind}: the same step");
            assert_eq!(honest.verdict, StepVerdict::Upheld, "{name} {kind}");
        }
    }
}
