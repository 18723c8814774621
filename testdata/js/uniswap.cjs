// A standard JavaScript client (ethers v6, on its defaults) against a shard,
// with a well-known DEX's published contracts (Uniswap V2 core, from npm):
// deploy, call, estimate-then-send, logs, a revert reason, and the witness
// budget's removal. A Uniswap V2 pair's gas depends on the block: `_update`
// adds to its price accumulators only when `block.timestamp` moved since
// its last write, so a `sync` or `swap` right after another must be
// estimated for the block it lands in.
//
// usage: node uniswap.cjs RPC_URL PRIVATE_KEY   (NODE_PATH: the tools' node_modules)
// Prints one JSON line of results; exits non-zero on the first failure.
"use strict";

const { ethers } = require("ethers");
const Factory = require("@uniswap/v2-core/build/UniswapV2Factory.json");
const Pair = require("@uniswap/v2-core/build/UniswapV2Pair.json");
const ERC20 = require("@uniswap/v2-core/build/ERC20.json");

function check(cond, what) {
  if (!cond) throw new Error(`check failed: ${what}`);
}

async function main() {
  const [url, key] = process.argv.slice(2);
  const provider = new ethers.JsonRpcProvider(url);
  // receipts are looked for every 100 ms (not every 4 s), so each next
  // transaction is estimated within the second of the write before it; and
  // as with any chain that makes blocks this fast (anvil's automine too),
  // nonces are counted by ethers' NonceManager: ethers answers a repeated
  // request within 250 ms from its cache, which can hand a just-used
  // pending nonce back
  provider.pollingInterval = 100;
  const wallet = new ethers.NonceManager(new ethers.Wallet(key, provider));
  const me = await wallet.getAddress();
  const out = { chainId: Number((await provider.getNetwork()).chainId) };

  // deploy two tokens and the factory, create a pair
  const deploy = async (artifact, ...args) => {
    const f = new ethers.ContractFactory(artifact.abi, artifact.bytecode, wallet);
    const c = await f.deploy(...args);
    await c.waitForDeployment();
    return c;
  };
  const supply = 10n ** 24n;
  const tokenA = await deploy(ERC20, supply);
  const tokenB = await deploy(ERC20, supply);
  const factory = await deploy(Factory, me);
  const created = await (await factory.createPair(await tokenA.getAddress(), await tokenB.getAddress())).wait();
  check(created.status === 1, "createPair succeeded");
  const event = created.logs.map((l) => factory.interface.parseLog(l)).find((e) => e && e.name === "PairCreated");
  check(event, "PairCreated in the receipt");
  const pairAddress = event.args.pair;
  check((await factory.getPair(await tokenA.getAddress(), await tokenB.getAddress())) === pairAddress, "getPair");
  check((await factory.allPairsLength()) === 1n, "allPairsLength");
  const pair = new ethers.Contract(pairAddress, Pair.abi, wallet);
  const token0 = (await pair.token0()) === (await tokenA.getAddress()) ? tokenA : tokenB;
  const token1 = token0 === tokenA ? tokenB : tokenA;

  // liquidity
  const liquidity = 10n ** 21n;
  await (await token0.transfer(pairAddress, liquidity)).wait();
  await (await token1.transfer(pairAddress, liquidity)).wait();
  const minted = await (await pair.mint(me)).wait();
  check(minted.status === 1, "mint succeeded");
  const [r0, r1] = await pair.getReserves();
  check(r0 === liquidity && r1 === liquidity, "reserves after mint");
  const fromBlock = minted.blockNumber;

  // writes right after writes. sync() right after sync(): ethers
  // estimates the second at once, in the first one's second; the second is
  // sent only once the wall clock has passed that second, so it lands in a
  // block whose timestamp moved and its _update adds to the accumulators
  const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
  out.syncs = [];
  for (let round = 0; round < 4; round++) {
    const first = await (await pair.sync()).wait();
    check(first.status === 1, `sync ${round}`);
    const gas = await pair.sync.estimateGas();
    const estimatedIn = Math.floor(Date.now() / 1000);
    const written = (await provider.getBlock(first.blockNumber)).timestamp;
    const before = await pair.price0CumulativeLast();
    while (Math.floor(Date.now() / 1000) <= written) await sleep(20);
    const second = await (await pair.sync({ gasLimit: gas })).wait();
    check(second.status === 1, `sync ${round} sent with the node's estimate ${gas} succeeded`);
    const moved = (await pair.price0CumulativeLast()) !== before;
    check(moved, `sync ${round} landed in a later second and updated the accumulators`);
    out.syncs.push({ estimate: Number(gas), used: Number(second.gasUsed), sameSecond: estimatedIn === written });
  }
  // swaps right after their input transfer, with ethers' default estimate
  out.swaps = [];
  for (let round = 0; round < 4; round++) {
    const amountIn = 10n ** 18n;
    const [a, b] = await pair.getReserves();
    const amountOut = (amountIn * 997n * b) / (a * 1000n + amountIn * 997n);
    await (await token0.transfer(pairAddress, amountIn)).wait();
    const swapped = await (await pair.swap(0, amountOut, me, "0x")).wait();
    check(swapped.status === 1, `swap ${round} sent with ethers' default estimate succeeded`);
    const swap = swapped.logs.map((l) => pair.interface.parseLog(l)).find((e) => e && e.name === "Swap");
    check(swap && swap.args.amount1Out === amountOut, `Swap event of swap ${round}`);
    out.swaps.push({ used: Number(swapped.gasUsed), gasLimit: Number((await provider.getTransaction(swapped.hash)).gasLimit) });
  }

  // logs over a range
  const syncs = await pair.queryFilter(pair.filters.Sync(), fromBlock, "latest");
  // the mint, eight syncs and four swaps each emit one
  check(syncs.length === 13, `Sync logs found: ${syncs.length}`);
  out.syncLogs = syncs.length;
  const [f0, f1] = await pair.getReserves();
  check(syncs[syncs.length - 1].args.reserve0 === f0 && syncs[syncs.length - 1].args.reserve1 === f1, "the last Sync is the reserves");

  // a revert reason: at estimate, and at call
  try {
    await pair.swap.estimateGas(0, 0, me, "0x");
    check(false, "a swap of nothing is refused");
  } catch (e) {
    check(e.code === "CALL_EXCEPTION", `CALL_EXCEPTION, got ${e.code}`);
    out.revertReason = e.reason;
  }
  check(out.revertReason === "UniswapV2: INSUFFICIENT_OUTPUT_AMOUNT", `revert reason ${out.revertReason}`);

  // a transaction reading 80 accounts (over the witness budget optishard
  // had before stf version 4): estimated and sent with ethers' defaults,
  // it succeeds as on Ethereum
  let runtime = "";
  for (let i = 0; i < 80; i++) runtime += "62" + (0x10000 + i).toString(16).padStart(6, "0") + "3150";
  runtime += "00";
  const n = runtime.length / 2;
  const init = "0x61" + n.toString(16).padStart(4, "0") + "80600c6000396000f3" + runtime;
  const wide = await (await wallet.sendTransaction({ data: init })).wait();
  check(wide.status === 1 && wide.contractAddress, "the wide reader deployed");
  const wideEstimate = await provider.estimateGas({ from: me, to: wide.contractAddress });
  const wideRun = await (await wallet.sendTransaction({ to: wide.contractAddress })).wait();
  check(wideRun.status === 1, "the wide read succeeds");
  out.wide = { estimate: Number(wideEstimate), used: Number(wideRun.gasUsed) };
  console.log(JSON.stringify(out));
}

main().then(
  () => process.exit(0),
  (e) => {
    console.error(e && e.stack ? e.stack : e);
    process.exit(1);
  },
);
