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
use prover::{AuthState, IBridge, SignedTx};

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
    let exec = crate::machine::level_one_run(&s, 0, &deploy);
    let pinger = exec.outcomes[0].receipt.contract_address.expect("deployed");
    s.commit(1, &exec.outcomes[0].changes).unwrap();
    (s, pinger)
}

fn call(nonce: u64, to: Address, value: u64, data: Vec<u8>) -> SignedTx {
    sign_1559(&signer(0), nonce, TxKind::Call(to), U256::from(value), Bytes::from(data), 1_000_000)
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
        let o = crate::machine::level_one_run(&s, 1, &tx).outcomes.remove(0);
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

/// Off the wire, this level's new parts are bounded before anything is
/// allocated for them: an epilogue naming more message ids than any item
/// sends (or more than its bytes hold), a call's step carrying a third
/// code, a commit storing code past EIP-170's 24 KiB.
#[test]
fn the_new_parts_of_a_step_are_bounded_off_the_wire() {
    use bridge::{DecodeError, Encode, decode_exact};
    let too_long = |bytes: &[u8], part: &str| matches!(decode_exact::<ItemStep>(bytes), Err(DecodeError::TooLong { what, .. }) if what == part);
    let (s, pinger) = deployed();
    let tx = call(1, pinger, 0, IPinger::pingCall { dst: 2, to: PEER, data: Bytes::new() }.abi_encode());
    let (p, pre) = (params(2), bridge::TraceState::start());
    let head = item_trace(s.reader(1).unwrap(), &p, &tx, &pre, &[]).unwrap();
    let epilogue = item_step(s.reader(1).unwrap(), &p, &tx, &pre, head.instructions + 1).unwrap();
    let ItemStep::Epilogue(e) = &epilogue else { panic!("the epilogue") };
    assert_eq!(e.messages.len(), 1);
    // the ids are the step's last part: a count, then 32 bytes each
    let wire = epilogue.encode();
    let at = wire.len() - 36;
    for (count, part) in [(u32::MAX, "messages"), (2, "")] {
        let mut forged = wire.clone();
        forged[at..at + 4].copy_from_slice(&count.to_be_bytes());
        if part.is_empty() {
            assert!(decode_exact::<ItemStep>(&forged).is_err(), "two ids where one is");
        } else {
            assert!(too_long(&forged, part), "{count} ids");
        }
    }
    // a call's step with three codes
    let call_step = (0..head.instructions)
        .map(|j| item_step(s.reader(1).unwrap(), &p, &tx, &pre, j + 1).unwrap())
        .find(|st| matches!(st, ItemStep::Instruction(i) if i.state.opcode == 0xf1))
        .unwrap();
    let ItemStep::Instruction(mut i) = call_step else { unreachable!() };
    i.journal.as_mut().unwrap().codes = vec![vec![0x00]; 3];
    assert!(too_long(&ItemStep::Instruction(i).encode(), "codes"));
    // a commit storing code one byte past the limit
    let s = state(&[]);
    let deploy = sign_1559(&signer(0), 0, TxKind::Create, U256::ZERO, pinger_bin(), 2_000_000);
    let head = item_trace(s.reader(0).unwrap(), &params(1), &deploy, &pre, &[]).unwrap();
    let mut commit = (head.instructions + 2..head.last)
        .map(|j| item_step(s.reader(0).unwrap(), &params(1), &deploy, &pre, j).unwrap())
        .find_map(|st| match st {
            ItemStep::Commit(c) if c.code.is_some() => Some(c),
            _ => None,
        })
        .expect("the Pinger's code is committed");
    commit.code.as_mut().unwrap().code = vec![0x00; prover::machine::MAX_CODE as usize + 1];
    assert!(too_long(&ItemStep::Commit(commit).encode(), "created code"));
}
