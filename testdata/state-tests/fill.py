#!/usr/bin/env python3
"""Fills optishard's own Ethereum state tests with Ethereum's reference
implementation (the execution specs' `ethereum-spec-evm t8n`, PyPI package
`ethereum-execution`), for the fork the shards run (Osaka).

Each test below is a pre-state, a block environment and a transaction
template (several calldata / gas / value choices); the reference computes,
for every choice, the post-state root, the logs hash and whether the
transaction is valid. The output is the standard state-test fixture format
(`optishard.json` beside this file), which `prover/tests/it/state_tests.rs`
runs through optishard's state-transition function.

Run through `scripts/state-tests.sh fill` (which installs the reference).
The tests are ours; what they expect is the reference's.
"""

import json
import os
import subprocess
import sys
import tempfile

FORK = "Osaka"
HERE = os.path.dirname(os.path.abspath(__file__))
T8N = os.environ.get("T8N", "ethereum-spec-evm")

# the ethereum/tests sender key (public test key) and a second one
KEY = "0x45a915e4d060149eb4365960e6a7a45f334393093061116b197e3240065ff2d8"
SENDER = "0xa94f5374fce5edbc8e2a8697c15331677e6ebf0b"
COINBASE = "0x2adc25665018aa1fe0e6bc666dac8fc2697ff9ba"
BRIDGE = "0x0000000000000000000000000000000000000b1d"
ETH = 10**18

OPS = {
    "STOP": 0x00, "ADD": 0x01, "MUL": 0x02, "SUB": 0x03, "DIV": 0x04, "MOD": 0x06, "EXP": 0x0A,
    "LT": 0x10, "GT": 0x11, "EQ": 0x14, "ISZERO": 0x15, "AND": 0x16, "OR": 0x17, "NOT": 0x19,
    "SHL": 0x1B, "SHR": 0x1C, "CLZ": 0x1E, "SHA3": 0x20,
    "ADDRESS": 0x30, "BALANCE": 0x31, "ORIGIN": 0x32, "CALLER": 0x33, "CALLVALUE": 0x34,
    "CALLDATALOAD": 0x35, "CALLDATASIZE": 0x36, "CALLDATACOPY": 0x37, "CODESIZE": 0x38,
    "CODECOPY": 0x39, "GASPRICE": 0x3A, "EXTCODESIZE": 0x3B, "EXTCODECOPY": 0x3C,
    "RETURNDATASIZE": 0x3D, "RETURNDATACOPY": 0x3E, "EXTCODEHASH": 0x3F,
    "BLOCKHASH": 0x40, "COINBASE": 0x41, "TIMESTAMP": 0x42, "NUMBER": 0x43, "PREVRANDAO": 0x44,
    "GASLIMIT": 0x45, "CHAINID": 0x46, "SELFBALANCE": 0x47, "BASEFEE": 0x48, "BLOBHASH": 0x49,
    "BLOBBASEFEE": 0x4A,
    "POP": 0x50, "MLOAD": 0x51, "MSTORE": 0x52, "MSTORE8": 0x53, "SLOAD": 0x54, "SSTORE": 0x55,
    "JUMP": 0x56, "JUMPI": 0x57, "PC": 0x58, "MSIZE": 0x59, "GAS": 0x5A, "JUMPDEST": 0x5B,
    "TLOAD": 0x5C, "TSTORE": 0x5D, "MCOPY": 0x5E, "PUSH0": 0x5F,
    "DUP1": 0x80, "DUP2": 0x81, "DUP3": 0x82, "DUP4": 0x83, "SWAP1": 0x90, "SWAP2": 0x91,
    "LOG0": 0xA0, "LOG1": 0xA1, "LOG2": 0xA2, "LOG3": 0xA3, "LOG4": 0xA4,
    "CREATE": 0xF0, "CALL": 0xF1, "CALLCODE": 0xF2, "RETURN": 0xF3, "DELEGATECALL": 0xF4,
    "CREATE2": 0xF5, "STATICCALL": 0xFA, "REVERT": 0xFD, "INVALID": 0xFE, "SELFDESTRUCT": 0xFF,
}


def push(value):
    """PUSHn of the smallest width (PUSH0 for zero)."""
    if value == 0:
        return bytes([0x5F])
    raw = value.to_bytes((value.bit_length() + 7) // 8, "big")
    return bytes([0x5F + len(raw)]) + raw


def asm(*parts):
    """Assembles opcodes (names), ints (pushed) and bytes (raw)."""
    out = b""
    for p in parts:
        if isinstance(p, int):
            out += push(p)
        elif isinstance(p, bytes):
            out += p
        else:
            for word in p.split():
                out += push(int(word, 0)) if word[0].isdigit() else bytes([OPS[word]])
    return out


def sstore(slot, *value):
    """Stores what `value` leaves on the stack at `slot`."""
    return asm(*value, slot, "SSTORE")


def call(to, gas=None, value=0, args=(0, 0), ret=(0, 0), op="CALL"):
    stack = [ret[1], ret[0], args[1], args[0]]
    if op in ("CALL", "CALLCODE"):
        stack.append(value)
    return asm(*stack, to, *(["GAS"] if gas is None else [gas]), op)


def initcode(runtime):
    """Init code that returns `runtime`."""
    n = len(runtime)
    # PUSH n, DUP1, PUSH offset, PUSH0, CODECOPY, PUSH0, RETURN
    head_len = len(asm(n, "DUP1", 0xFF, "PUSH0 CODECOPY PUSH0 RETURN"))
    return asm(n, "DUP1", head_len, "PUSH0 CODECOPY PUSH0 RETURN") + runtime


def addr(n):
    return "0x" + n.to_bytes(20, "big").hex()


def hx(b):
    return "0x" + b.hex()


def account(balance=0, nonce=0, code=b"", storage=None):
    return {
        "balance": hex(balance),
        "nonce": hex(nonce),
        "code": hx(code),
        "storage": {hex(k): hex(v) for k, v in (storage or {}).items()},
    }


def env(number=1, timestamp=1000, base_fee=7, gas_limit=30_000_000):
    return {
        "currentCoinbase": COINBASE,
        "currentGasLimit": hex(gas_limit),
        "currentNumber": hex(number),
        "currentTimestamp": hex(timestamp),
        "currentRandom": "0x" + "00" * 29 + "020000",
        "currentDifficulty": "0x0",
        "currentBaseFee": hex(base_fee),
        "currentExcessBlobGas": "0x0",
    }


def tx(to, data=(b"",), gas=(1_000_000,), value=(0,), nonce=0, kind="1559", access_lists=None,
       max_fee=100, tip=2, gas_price=10):
    t = {
        "data": [hx(d) for d in data],
        "gasLimit": [hex(g) for g in gas],
        "value": [hex(v) for v in value],
        "nonce": hex(nonce),
        "to": to or "",
        "secretKey": KEY,
        "sender": SENDER,
    }
    if kind == "1559":
        t["maxFeePerGas"] = hex(max_fee)
        t["maxPriorityFeePerGas"] = hex(tip)
    else:
        t["gasPrice"] = hex(gas_price)
    if access_lists is not None:
        t["accessLists"] = access_lists
    return t


def funded(extra=None, balance=100 * ETH):
    pre = {SENDER: account(balance=balance)}
    pre.update(extra or {})
    return pre


TESTS = {}


def test(name, pre, environment, template, comment):
    TESTS[name] = {"pre": pre, "env": environment, "transaction": template, "comment": comment}


# --- value and fees -------------------------------------------------------
test("transfer_fees", funded({addr(0x1000): account(balance=1)}), env(),
     tx(addr(0x1000), value=(0, 1, 3 * ETH), max_fee=16, tip=2),
     "EIP-1559 transfer: value moves, the tip goes to the coinbase, the base fee is burned")
test("transfer_legacy_and_access_list", funded({addr(0x1000): account(code=sstore(0, "CALLVALUE"))}), env(),
     tx(addr(0x1000), data=(b"", b"\x01"), value=(0, 5), kind="legacy", gas_price=10,
        access_lists=[None, [{"address": addr(0x1000), "storageKeys": ["0x" + "00" * 32]}]]),
     "a legacy transaction and an EIP-2930 one with an access list")
test("transfer_to_new_account", funded(), env(base_fee=1),
     tx(addr(0xDEAD), value=(0, 10**9), max_fee=1, tip=0),
     "a transfer creating an account; a zero-value one touching nothing")

# --- storage ----------------------------------------------------------------
STORE = asm("PUSH0 CALLDATALOAD 32 CALLDATALOAD SSTORE 64 CALLDATALOAD 32 CALLDATALOAD SSTORE")


def words(*ws):
    return b"".join(w.to_bytes(32, "big") for w in ws)


test("sstore_and_refunds", funded({addr(0x2000): account(code=STORE, storage={1: 1, 2: 2})}), env(),
     tx(addr(0x2000), data=(words(1, 0, 0), words(3, 7, 0), words(1, 5, 1), words(3, 9, 0),
                            words(2, 0, 2)), gas=(200_000, 25_000)),
     "SSTORE gas and refunds (EIP-2200/3529): clear, set new, modify, set and restore, too little gas")

# --- logs, reverts, out of gas -----------------------------------------------
LOGGER = asm("CALLDATASIZE PUSH0 PUSH0 CALLDATACOPY",
             "CALLDATASIZE PUSH0 LOG0",
             0xAA, "CALLDATASIZE PUSH0 LOG1",
             0xBB, 0xAA, 32, "PUSH0 LOG2",
             0xCC, 0xBB, 0xAA, "PUSH0 PUSH0 LOG3",
             0xDD, 0xCC, 0xBB, 0xAA, 1, "PUSH0 LOG4")
REVERTER = asm(1, "PUSH0 SSTORE", 0x11, "PUSH0 PUSH0 LOG1", 4, 28, "REVERT")
OUTER = asm(0x22, "PUSH0 PUSH0 LOG1") + call(addr(0x3001)) + sstore(1, "") + asm(0x33, "PUSH0 PUSH0 LOG1")
OUTER_REVERTS = OUTER + asm("PUSH0 PUSH0 REVERT")
LOOP = asm("JUMPDEST", 1, "PUSH0 SLOAD ADD PUSH0 SSTORE PUSH0 JUMP")
test("logs_reverts_and_out_of_gas",
     funded({addr(0x3000): account(code=LOGGER), addr(0x3001): account(code=REVERTER),
             addr(0x3002): account(code=OUTER), addr(0x3003): account(code=OUTER_REVERTS),
             addr(0x3004): account(code=LOOP)}), env(),
     tx(addr(0x3000), data=(b"", b"hello world"), gas=(100_000, 22_000)),
     "LOG0..LOG4; too little gas")
test("nested_revert_drops_inner_logs",
     funded({addr(0x3001): account(code=REVERTER), addr(0x3002): account(code=OUTER),
             addr(0x3003): account(code=OUTER_REVERTS)}), env(),
     tx(addr(0x3002), gas=(200_000,)),
     "an inner call reverts: its storage and logs go, the outer's stay")
test("top_level_revert_keeps_nothing",
     funded({addr(0x3001): account(code=REVERTER), addr(0x3003): account(code=OUTER_REVERTS)}), env(),
     tx(addr(0x3003), gas=(200_000,)),
     "the transaction reverts: no logs, no storage, gas paid")
test("out_of_gas_loop", funded({addr(0x3004): account(code=LOOP)}), env(),
     tx(addr(0x3004), gas=(100_000, 1_000_000)),
     "an endless loop uses all its gas")

# --- block context -------------------------------------------------------------
CONTEXT = b"".join(sstore(i, op) for i, op in enumerate([
    "TIMESTAMP", "NUMBER", "COINBASE", "BASEFEE", "PREVRANDAO", "CHAINID", "GASLIMIT", "GASPRICE",
    "ORIGIN", "CALLER", "SELFBALANCE", "BLOBBASEFEE", "CALLVALUE",
])) + sstore(13, 1, "NUMBER SUB BLOCKHASH") + sstore(14, 257, "NUMBER SUB BLOCKHASH") + \
    sstore(15, int(SENDER, 16), "BALANCE")
test("block_context", funded({addr(0x4000): account(balance=7, code=CONTEXT)}), env(number=300, timestamp=1_700_000_000),
     tx(addr(0x4000), value=(0, 3)),
     "TIMESTAMP, NUMBER, COINBASE, BASEFEE, PREVRANDAO, CHAINID, GASLIMIT, GASPRICE, ORIGIN, CALLER, "
     "SELFBALANCE, BLOBBASEFEE, BLOCKHASH (recent and too old), BALANCE")

# --- creation ------------------------------------------------------------------
CHILD = asm(0x42, "PUSH0 MSTORE 32 PUSH0 RETURN")
CHILD_INIT = initcode(CHILD)
# constructor: store the child's init code in memory, CREATE it and CREATE2 it, keep both addresses
def factory_init():
    body = lambda off: asm(len(CHILD_INIT), off, "PUSH0 CODECOPY",
                           len(CHILD_INIT), "PUSH0 PUSH0 CREATE PUSH0 SSTORE",
                           0x5A17, len(CHILD_INIT), "PUSH0 PUSH0 CREATE2", 1, "SSTORE",
                           "PUSH0 PUSH0 RETURN")
    n = 0
    while len(body(n)) != n:
        n = len(body(n))
    return body(n) + CHILD_INIT
test("create_and_create2", funded(), env(),
     tx(None, data=(factory_init(), CHILD_INIT, b"\xef\x00" + b"\x00" * 8,
                    asm(0x6001, "PUSH0 RETURN"),
                    initcode(b"\xef\x01\x00")), gas=(500_000, 60_000)),
     "contract creation: CREATE and CREATE2 from a constructor, a plain deployment, "
     "initcode reverting, code larger than 24 KiB (fails), code starting with 0xEF (EIP-3541), too little gas")
test("initcode_too_large", funded(), env(),
     tx(None, data=(b"\x00" * 49_153, b"\x00" * 49_152), gas=(16_000_000,)),
     "EIP-3860: initcode over 49,152 bytes makes the transaction invalid")

# --- selfdestruct (EIP-6780) -----------------------------------------------------
DESTRUCT = asm("PUSH0 SLOAD", 1, "ADD PUSH0 SSTORE", int(COINBASE, 16), "SELFDESTRUCT")
test("selfdestruct_of_an_old_contract_moves_balance_only",
     funded({addr(0x5000): account(balance=ETH, code=DESTRUCT, storage={0: 1})}), env(),
     tx(addr(0x5000), value=(0, 1)),
     "EIP-6780: a contract not created in this transaction keeps code and storage; its balance moves")
test("selfdestruct_in_the_constructor_removes_everything", funded(), env(),
     tx(None, data=(asm(1, "PUSH0 SSTORE", 0xBEEF, "SELFDESTRUCT"),), value=(0, 100)),
     "EIP-6780: created and destroyed in one transaction: gone, balance to the beneficiary")

# --- calls: touch, depth, static, delegate ------------------------------------------
test("zero_value_calls_create_nothing",
     funded({addr(0x6000): account(code=call(addr(0x6001), value=0) + call(addr(0x6002), value=0)
                                   + call(addr(0x6003), value=1) + sstore(0, "ADD ADD")),
             addr(0x6002): account(balance=1)}), env(),
     tx(addr(0x6000), value=(1,)),
     "EIP-161: a zero-value call to a missing account creates nothing; a value call creates it")
test("delegatecall_staticcall_and_callcode",
     funded({addr(0x6100): account(code=call(addr(0x6101), op="DELEGATECALL") + sstore(5, "")
                                   + call(addr(0x6101), op="STATICCALL") + sstore(6, "")
                                   + call(addr(0x6101), op="CALLCODE") + sstore(7, "")),
             addr(0x6101): account(code=sstore(1, "CALLER") + sstore(2, "ADDRESS"))}), env(),
     tx(addr(0x6100)),
     "DELEGATECALL and CALLCODE write the caller's storage; a write under STATICCALL fails")
TRANSIENT = asm(7, 1, "TSTORE") + call(addr(0x6201)) + sstore(0, 1, "TLOAD") + \
    asm(0x1234, "PUSH0 MSTORE 32 PUSH0 64 MCOPY") + sstore(2, 64, "MLOAD")
test("transient_storage_and_mcopy",
     funded({addr(0x6200): account(code=TRANSIENT), addr(0x6201): account(code=asm(9, 1, "TSTORE"))}), env(),
     tx(addr(0x6200)),
     "EIP-1153 transient storage is per contract and per transaction; EIP-5656 MCOPY")
CODEHASH = b"".join(sstore(i, a, "EXTCODEHASH") for i, a in
                    enumerate([0x7001, 0x7002, 0x7003, 0x7004])) + sstore(4, 0x7003, "EXTCODESIZE")
test("extcodehash",
     funded({addr(0x7000): account(code=CODEHASH), addr(0x7002): account(nonce=1),
             addr(0x7003): account(code=b"\x00\x01\x02"), addr(0x7004): account(balance=5)}), env(),
     tx(addr(0x7000)),
     "EXTCODEHASH of a missing account, one with only a nonce, a contract and an EOA with balance")

# --- precompiles -------------------------------------------------------------------
def precompile_caller(address, inp):
    # copy input from calldata, call, keep success and keccak of the output
    return asm("CALLDATASIZE PUSH0 PUSH0 CALLDATACOPY",
               256, "PUSH0 CALLDATASIZE PUSH0", address, "GAS STATICCALL PUSH0 SSTORE",
               "RETURNDATASIZE PUSH0 PUSH0 RETURNDATACOPY RETURNDATASIZE PUSH0 SHA3", 1, "SSTORE",
               "RETURNDATASIZE", 2, "SSTORE")

ECRECOVER_IN = bytes.fromhex(
    "456e9aea5e197a1f1af7a3e85a3212fa4049a3ba34c2289b4c860fc0b0c64ef3"
    "000000000000000000000000000000000000000000000000000000000000001c"
    "9242685bf161793cc25603c231bc2f568eb630ea16aa137d2664ac8038825608"
    "4f8ae3bd7535248d0bd448298cc2e2071e56992d0774dc340c368ae950852ada")
MODEXP_IN = words(1, 1, 1) + b"\x03\x05\x07"
BN_ADD_IN = words(1, 2, 1, 2)
P256_IN = bytes.fromhex(
    "4cee90eb86eaa050036147a12d49004b6b9c72bd725d39d4785011fe190f0b4d"
    "a73bd4903f0ce3b639bbbf6e8e80d16931ff4bcf5993d58468e8fb19086e8cac"
    "36dbcd03009df8c59286b162af3bd7fcc0450c9aa81be5d10d312af6c66b1d60"
    "4aebd3099c618202fcfe16ae7770b0c49ab5eadf74b754204a3bb6060e44eff3"
    "7618b065f9832de4ca6ca971a7a1adc826d0f7c00181a5fb2ddf79ae00b4e10e")
for name, address, inputs in [
    ("ecrecover", 1, [ECRECOVER_IN, b"\x00" * 128]),
    ("sha256", 2, [b"abc", b""]),
    ("ripemd160", 3, [b"abc"]),
    ("identity", 4, [b"optishard" * 10]),
    ("modexp", 5, [MODEXP_IN, words(0, 0, 0)]),
    ("bn254_add", 6, [BN_ADD_IN]),
    ("blake2f", 9, [bytes(4) + bytes(64) + bytes(128) + bytes(16) + b"\x01"]),
    ("p256verify", 0x100, [P256_IN, P256_IN[:-1] + b"\x00"]),
]:
    test(f"precompile_{name}", funded({addr(0x8000): account(code=precompile_caller(address, None))}), env(),
         tx(addr(0x8000), data=tuple(inputs)),
         f"precompile at {hex(address)}: success, output hash and size")

# --- Osaka -----------------------------------------------------------------------
CLZ = b"".join(sstore(i, v, "CLZ") for i, v in enumerate([0, 1, 2**255, 2**256 - 1, 0xFFFF]))
test("clz_opcode", funded({addr(0x9000): account(code=CLZ)}), env(),
     tx(addr(0x9000)), "EIP-7939 CLZ")
test("calldata_floor", funded({addr(0x9100): account(balance=1)}), env(),
     tx(addr(0x9100), data=(b"\x01" * 2000, b"\x00" * 2000), gas=(110_000, 60_000)),
     "EIP-7623: calldata-heavy transactions pay the floor price")

# --- invalid transactions ------------------------------------------------------------
test("invalid_nonce_too_high", funded(), env(), tx(addr(0x1000), nonce=1), "nonce ahead of the account's")
test("invalid_nonce_too_low", funded(balance=ETH) | {SENDER: account(balance=ETH, nonce=5)}, env(),
     tx(addr(0x1000), nonce=4), "nonce behind the account's")
test("invalid_insufficient_funds", funded(balance=10**6), env(), tx(addr(0x1000), value=(10**6,)),
     "cannot pay gas * price + value")
test("invalid_intrinsic_gas", funded(), env(), tx(addr(0x1000), gas=(20_999,)), "gas below 21,000")
test("invalid_fee_below_base_fee", funded(), env(base_fee=1000), tx(addr(0x1000), max_fee=999, tip=0),
     "max fee per gas below the block's base fee")
test("invalid_tip_above_max_fee", funded(), env(), tx(addr(0x1000), max_fee=10, tip=11),
     "priority fee above the max fee")
test("invalid_gas_above_block_limit", funded(), env(gas_limit=1_000_000), tx(addr(0x1000), gas=(1_000_001,)),
     "gas limit above the block's")
test("invalid_gas_above_osaka_cap", funded(), env(gas_limit=60_000_000), tx(addr(0x1000), gas=(2**24 + 1, 2**24)),
     "EIP-7825: a transaction may not ask more than 2^24 gas")
test("invalid_sender_with_code", {SENDER: account(balance=ETH, code=b"\x00")}, env(), tx(addr(0x1000)),
     "EIP-3607: a sender with code")

WIDE = b"".join(asm(0x10000 + i, "BALANCE POP") for i in range(80)) + sstore(0, 1)
test("reads_eighty_accounts", funded({addr(0xA000): account(code=WIDE)}), env(),
     tx(addr(0xA000), gas=(1_000_000,)),
     "reads 80 accounts: 368 KiB of witness, over the 320 KiB budget of stf versions 2 and 3; "
     "since version 4 it succeeds as on Ethereum")

# --- what optishard changes on purpose ---------------------------------------------------
test("diverges_bridge_address", funded({addr(0xA100): account(code=call(int(BRIDGE, 16), value=1)
                                                             + sstore(0, ""))}), env(),
     tx(addr(0xA100), value=(5,)),
     "a call to 0x...0b1d: an empty account on Ethereum, the bridge precompile on optishard")


def t8n_in_process(pre, environment, txs):
    """The reference's t8n called in this process (30 ms a call instead of
    a second's start-up): for refilling thousands of public cases."""
    import io
    from ethereum_spec_tools.evm_tools import main as evm_main
    from ethereum_spec_tools.evm_tools.t8n import ForkCache
    global _CACHE
    try:
        _CACHE
    except NameError:
        _CACHE = ForkCache()
    out = io.StringIO()
    inp = io.StringIO(json.dumps({"alloc": pre, "env": environment, "txs": txs}))
    evm_main(["t8n", "--input.alloc", "stdin", "--input.env", "stdin", "--input.txs", "stdin",
              "--output.result", "stdout", "--output.alloc", "stdout", "--state.fork", FORK,
              "--state.chainid", "1", "--state-test"], out, inp, _CACHE)
    return json.loads(out.getvalue())["result"]


def refill(src, dst, part, parts):
    """Refills every state test under `src` (any fork's fixtures, e.g.
    ethereum/tests' Cancun GeneralStateTests) for FORK: the same pre-state,
    environment and transactions, the expected results computed by the
    reference. Cases the reference cannot take (a pre-state Osaka forbids,
    blob or set-code transactions, fields wider than 256 bits) are counted
    and left out. Writes one fixture per source file under `dst`."""
    import contextlib
    import glob
    files = sorted(glob.glob(os.path.join(src, "**", "*.json"), recursive=True))[part::parts]
    # the reference logs every case to stderr: once, to nowhere
    quiet = open(os.devnull, "w")
    counts = {"files": 0, "cases": 0, "left_out": {}}
    for path in files:
        try:
            with open(path) as f:
                fixture = json.load(f)
        except (OSError, ValueError):
            continue
        out = {}
        for name, t in fixture.items():
            tmpl = t.get("transaction", {})
            why = None
            if "blobVersionedHashes" in tmpl or "authorizationList" in tmpl:
                why = "blob or set-code transaction"
            elif ":bigint" in json.dumps(tmpl):
                why = "a field wider than 256 bits"
            posts = next(iter(t.get("post", {}).values()), [])
            if why is None and not posts:
                why = "no post case"
            environment = dict(t["env"])
            number = int(environment["currentNumber"], 16)
            environment["blockHashes"] = {
                hex(n): "0x" + keccak(str(n).encode()).hex() for n in range(max(0, number - 256), number)}
            environment["withdrawals"] = []
            environment.setdefault("currentBaseFee", "0x0")
            environment.setdefault("currentExcessBlobGas", "0x0")
            environment.setdefault("currentRandom", "0x" + "00" * 32)
            environment["parentBeaconBlockRoot"] = "0x" + "00" * 32
            pre = {a: {**acc, "storage": acc.get("storage", {})} for a, acc in t["pre"].items()}
            cases = []
            for post in ([] if why else posts):
                ix = post["indexes"]
                try:
                    with contextlib.redirect_stderr(quiet):
                        res = t8n_in_process(pre, environment, [rpc_tx(tmpl, ix["data"], ix["gas"], ix["value"])])
                except (KeyError, TypeError, NameError, AttributeError):
                    raise  # a bug here, not a refusal: stop
                except Exception as e:  # the reference refuses the input
                    why = f"the reference refuses it: {type(e).__name__}"
                    cases = []
                    break
                case = {"hash": res["stateRoot"], "logs": res["logsHash"], "indexes": ix}
                if res["rejected"]:
                    case["expectException"] = res["rejected"][0]["error"]
                cases.append(case)
            if why:
                counts["left_out"][why] = counts["left_out"].get(why, 0) + 1
                continue
            counts["cases"] += len(cases)
            out[name] = {"env": t["env"], "pre": t["pre"], "transaction": tmpl, "post": {FORK: cases}}
        if out:
            target = os.path.join(dst, os.path.relpath(path, src))
            os.makedirs(os.path.dirname(target), exist_ok=True)
            with open(target, "w") as f:
                json.dump(out, f)
            counts["files"] += 1
    print(json.dumps(counts), file=sys.stderr)


def t8n(pre, environment, txs, workdir):
    for name, obj in [("alloc.json", pre), ("env.json", environment), ("txs.json", txs)]:
        with open(os.path.join(workdir, name), "w") as f:
            json.dump(obj, f)
    out = os.path.join(workdir, "out")
    os.makedirs(out, exist_ok=True)
    proc = subprocess.run([T8N, "t8n", "--input.alloc", f"{workdir}/alloc.json", "--input.env", f"{workdir}/env.json",
                    "--input.txs", f"{workdir}/txs.json", "--output.basedir", out,
                    "--output.result", "result.json", "--output.alloc", "alloc.json",
                    "--state.fork", FORK, "--state.chainid", "1", "--state-test"],
                   check=False, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"t8n failed: {proc.stderr[-2000:]}")
    with open(os.path.join(out, "result.json")) as f:
        return json.load(f)


def rpc_tx(template, d, g, v):
    t = {
        "chainId": "0x1", "nonce": template["nonce"], "gas": template["gasLimit"][g],
        "value": template["value"][v], "input": template["data"][d], "secretKey": template["secretKey"],
        "v": "0x0", "r": "0x0", "s": "0x0",
    }
    if template["to"]:
        t["to"] = template["to"]
    if "maxFeePerGas" in template:
        t.update(type="0x2", maxFeePerGas=template["maxFeePerGas"],
                 maxPriorityFeePerGas=template["maxPriorityFeePerGas"], accessList=[])
    else:
        t["gasPrice"] = template["gasPrice"]
        t["type"] = "0x0"
    lists = template.get("accessLists")
    if lists is not None and lists[d] is not None:
        t["accessList"] = lists[d]
        if t["type"] == "0x0":
            t["type"] = "0x1"
    return t


def main():
    out = {}
    with tempfile.TemporaryDirectory() as work:
        only = sys.argv[1:]
        for name, t in TESTS.items():
            if only and name not in only:
                continue
            environment = dict(t["env"])
            number = int(environment["currentNumber"], 16)
            environment["blockHashes"] = {
                hex(n): "0x" + keccak(str(n).encode()).hex() for n in range(max(0, number - 256), number)}
            environment["withdrawals"] = []
            environment["parentBeaconBlockRoot"] = "0x" + "00" * 32
            tmpl = t["transaction"]
            cases = []
            for d in range(len(tmpl["data"])):
                for g in range(len(tmpl["gasLimit"])):
                    for v in range(len(tmpl["value"])):
                        res = t8n(t["pre"], environment, [rpc_tx(tmpl, d, g, v)], work)
                        case = {"hash": res["stateRoot"], "logs": res["logsHash"],
                                "indexes": {"data": d, "gas": g, "value": v}}
                        if res["rejected"]:
                            case["expectException"] = res["rejected"][0]["error"]
                        cases.append(case)
            out[name] = {
                "_info": {"comment": t["comment"], "filling-tool": "ethereum-execution t8n (" + FORK + ")"},
                "env": t["env"], "pre": t["pre"], "transaction": tmpl, "post": {FORK: cases},
            }
            print(f"{name}: {len(cases)} cases", file=sys.stderr)
    if only:
        json.dump(out, sys.stdout, indent=1)
        return
    with open(os.path.join(HERE, "optishard.json"), "w") as f:
        json.dump(out, f, indent=1, sort_keys=True)
        f.write("\n")


def keccak(data):
    from ethereum.crypto.hash import keccak256
    return bytes(keccak256(data))


if __name__ == "__main__":
    if sys.argv[1:2] == ["--refill"]:
        # --refill SRC DST [PART PARTS]
        args = sys.argv[2:]
        refill(args[0], args[1], int(args[2]) if len(args) > 2 else 0, int(args[3]) if len(args) > 3 else 1)
    else:
        main()
