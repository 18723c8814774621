//! Level 2's steps around a transaction's instructions (issue 16): the
//! prologue's step from `s_0` to the first instruction (or the frame's
//! end when it runs none).

use alloy_primitives::{Address, TxKind, U256};
use prover::machine::{InstructionVerdict, prologue_step, trace_transaction, verify_prologue};

use crate::machine::{TARGET, env, state};
use crate::support::{params, sign_1559, signer};

const NOBODY: Address = Address::repeat_byte(0xe9);

/// The prologue's step re-runs the transaction's start from the values it
/// carries to exactly the replay's first state: the first instruction of
/// a call to code, the frame's end of a transfer to an account without
/// code (and of one to an account that does not exist), with and without
/// value.
#[test]
fn the_prologue_reaches_the_first_state() {
    let code = vec![0x60, 0x07, 0x60, 0x01, 0x55, 0x00];
    let s = state(&[(TARGET, code, vec![(1, 5)])]);
    for (to, value) in [(TARGET, 0u64), (TARGET, 9), (NOBODY, 0), (NOBODY, 12), (signer(1).address(), 3)] {
        let tx = sign_1559(&signer(0), 0, TxKind::Call(to), U256::from(value), Default::default(), 100_000);
        let t = trace_transaction(s.reader(0).unwrap(), &params(1), &tx, &[0]).unwrap();
        let first = match t.states.first() {
            Some(st) => st.commitment(),
            None => t.end.clone().unwrap().commitment(),
        };
        let step = prologue_step(s.reader(0).unwrap(), &params(1), &tx).unwrap();
        assert!(!step.pre.is_empty());
        assert_eq!(
            verify_prologue(&step, &env(&tx)),
            InstructionVerdict::Next(first),
            "to {to} value {value}"
        );
        // every value it carries is needed, and every one is proven
        for k in 0..step.pre.len() {
            let mut fewer = step.clone();
            fewer.pre.remove(k);
            assert!(
                matches!(verify_prologue(&fewer, &env(&tx)), InstructionVerdict::Rejected(_)),
                "without {k}"
            );
            let mut other = step.clone();
            other.pre[k].value = Some(vec![1; 72]);
            assert!(
                matches!(verify_prologue(&other, &env(&tx)), InstructionVerdict::Rejected(_)),
                "altered {k}"
            );
        }
        if !step.codes.is_empty() {
            let mut no_code = step.clone();
            no_code.codes.clear();
            assert!(matches!(verify_prologue(&no_code, &env(&tx)), InstructionVerdict::Rejected(_)));
        }
    }
}
