//! Cross-shard sends at level 2 (issue 16): a call to the bridge
//! precompile is a step carrying the caller, the bridge and the channel's
//! counter; the journal chains the ids of the messages sent; the epilogue
//! names them in the receipt and adds them to the outbox. So an item that
//! sends messages is decided one instruction at a time like any other,
//! with the published Pinger contract deployed by a level-2 create.

use alloy_primitives::{Address, Bytes, TxKind, U256};
use alloy_sol_types::{SolCall, sol};
use bridge::BRIDGE_ADDRESS;
use prover::machine::{InstructionVerdict, ItemStep, StepEnv, item_step, item_trace, verify_item_step};
use prover::{AuthState, IBridge, Item, Mode, SignedTx};

use crate::machine::state;
use crate::machine_settle::{walk, walk_at};
use crate::support::{params, pinger_bin, sign_1559, signer};

sol! {
    interface IPinger {
        function ping(uint32 dst, address to, bytes data) external payable returns (bytes32);
        function pingAndRevert(uint32 dst, address to) external payable;
    }
}

const PEER: Address = Address::repeat_byte(0x44);

/// The Pinger deployed (its deployment walked at level 2 first): the
/// state at version 1 and its address.
fn deployed() -> (AuthState, Address) {
    let s = state(&[]);
    let deploy = sign_1559(&signer(0), 0, TxKind::Create, U256::ZERO, pinger_bin(), 2_000_000);
    walk(&s, &deploy);
    let exec = prover::execute_items(s.reader(0).unwrap(), &params(1), vec![Item::Tx(deploy)], Mode::Verify)
        .unwrap();
    let pinger = exec.outcomes[0].receipt.contract_address.expect("deployed");
    s.commit(1, &exec.outcomes[0].changes).unwrap();
    (s, pinger)
}

fn call(nonce: u64, to: Address, value: u64, data: Vec<u8>) -> SignedTx {
    sign_1559(&signer(0), nonce, TxKind::Call(to), U256::from(value), Bytes::from(data), 1_000_000)
}

/// Level 1's outcome of `tx` over `s` at version 1.
fn outcome(s: &AuthState, tx: &SignedTx) -> prover::ItemOutcome {
    let exec =
        prover::execute_items(s.reader(1).unwrap(), &params(2), vec![Item::Tx(tx.clone())], Mode::Verify)
            .unwrap();
    exec.outcomes.into_iter().next().unwrap()
}

/// A contract's send, a transaction's send straight to the bridge, a send
/// its caller reverts, sends the bridge refuses: each trace ends on level
/// 1's `c_1`, whose outbox holds exactly the messages level 1 sent.
#[test]
fn every_send_is_a_step_and_ends_on_level_ones_outbox() {
    let (s, pinger) = deployed();
    let ping = IPinger::pingCall { dst: 2, to: PEER, data: Bytes::from_static(b"hello") }.abi_encode();
    let direct = IBridge::sendCall { dstShard: 3, to: PEER, data: Bytes::from_static(b"hi") }.abi_encode();
    let reverting = IPinger::pingAndRevertCall { dst: 1, to: PEER }.abi_encode();
    let to_itself = IBridge::sendCall { dstShard: 0, to: PEER, data: Bytes::new() }.abi_encode();
    for (what, tx, sent) in [
        ("a contract's send", call(1, pinger, 5, ping), 1),
        ("a send straight to the bridge", call(1, BRIDGE_ADDRESS, 7, direct), 1),
        ("a send its caller reverts", call(1, pinger, 5, reverting), 0),
        ("a send to its own shard", call(1, BRIDGE_ADDRESS, 0, to_itself), 0),
    ] {
        let o = outcome(&s, &tx);
        assert_eq!(o.messages.len(), sent, "{what}");
        walk_at(&s, 1, &tx);
    }
}

/// A step that hides the message (the epilogue naming none, or another
/// id), or a bridge call claiming another channel's slot, proves nothing.
#[test]
fn a_hidden_or_altered_send_proves_nothing() {
    let (s, pinger) = deployed();
    let ping = IPinger::pingCall { dst: 2, to: PEER, data: Bytes::new() }.abi_encode();
    let tx = call(1, pinger, 0, ping);
    let p = params(2);
    let pre = bridge::TraceState::start();
    let head = item_trace(s.reader(1).unwrap(), &p, &tx, &pre, &[]).unwrap();
    let all: Vec<u64> = (0..=head.last).collect();
    let t = item_trace(s.reader(1).unwrap(), &p, &tx, &pre, &all).unwrap();
    let env = StepEnv::new(p.clone(), &tx, bridge::TraceCommitment::start(s.root(1).unwrap()));
    let (mut sends, mut epilogues) = (0, 0);
    for j in 0..t.last {
        let step = item_step(s.reader(1).unwrap(), &p, &tx, &pre, j).unwrap();
        let agreed = t.states[j as usize];
        let refused = |step: ItemStep| {
            matches!(verify_item_step(&step, &agreed, &env), InstructionVerdict::Rejected(_))
        };
        match &step {
            ItemStep::Instruction(i)
                if i.state.opcode == 0xf1 && i.journal.as_ref().is_some_and(|j| j.entries.len() == 3) =>
            {
                sends += 1;
                let mut other = i.clone();
                let e = &mut other.journal.as_mut().unwrap().entries[2];
                e.key = prover::machine::JournalKey::Slot(BRIDGE_ADDRESS, U256::from(3));
                assert!(refused(ItemStep::Instruction(other)), "another channel's slot");
            }
            ItemStep::Epilogue(e) => {
                epilogues += 1;
                assert_eq!(e.messages.len(), 1);
                let mut none = e.clone();
                none.messages.clear();
                assert!(refused(ItemStep::Epilogue(none)), "no message named");
                let mut other = e.clone();
                other.messages[0] = bridge::Hash([7; 32]);
                assert!(refused(ItemStep::Epilogue(other)), "another message named");
            }
            _ => {}
        }
    }
    assert_eq!((sends, epilogues), (1, 1));
}
