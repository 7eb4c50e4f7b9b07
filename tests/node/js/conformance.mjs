// A JavaScript dApp's view of a node, with ethers 6 (pinned in .tools/package.json).
//
// Reads one JSON object on stdin: {url, privateKey, recipient, abi, bytecode}. Runs the steps a
// dApp runs (connect, chain id, balance, a legacy and an EIP-1559 transfer, deploy, call, a
// revert reason, a contract transaction, its event by filter and by getLogs, estimates), and
// prints one JSON line per step: {"step", "ok", "detail"}. Exits 0 when every step passed.
// tests/node/test_js_client.py runs it against the embedded node and anvil.

import { createRequire } from "node:module";
import { readFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

// ethers lives in .tools/node_modules (the Makefile installs it there), not beside this file.
const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..", "..");
const require = createRequire(path.join(root, ".tools", "package.json"));
const { ethers } = require("ethers");

const config = JSON.parse(readFileSync(0, "utf8"));
let failed = 0;

async function step(name, body) {
  try {
    const detail = await body();
    console.log(JSON.stringify({ step: name, ok: true, detail: String(detail ?? "") }));
  } catch (error) {
    failed += 1;
    const detail = error?.shortMessage || error?.message || String(error);
    console.log(JSON.stringify({ step: name, ok: false, detail }));
  }
}

function check(condition, message) {
  if (!condition) throw new Error(message);
}

// ethers answers a repeated request from a 250 ms cache by default; on an auto-mining node that
// would reuse a nonce or a balance from before the last block, so this client does not cache.
const provider = new ethers.JsonRpcProvider(config.url, undefined, {
  pollingInterval: 100,
  cacheTimeout: -1,
});
const wallet = new ethers.Wallet(config.privateKey, provider);
let probe;
let deployedAt;

await step("connect and chainId", async () => {
  const network = await provider.getNetwork();
  check(network.chainId === BigInt(config.chainId), `chainId ${network.chainId}`);
  return network.chainId;
});

await step("balance", async () => {
  const balance = await provider.getBalance(wallet.address);
  check(balance > 0n, "dev account has no balance");
  return ethers.formatEther(balance);
});

await step("block and fee data", async () => {
  const block = await provider.getBlock("latest");
  check(block !== null && block.number >= 0, "no latest block");
  const fees = await provider.getFeeData();
  check(fees.maxFeePerGas !== null && fees.gasPrice !== null, "no fee data");
  return `block ${block.number}, gasPrice ${fees.gasPrice}`;
});

await step("legacy transfer with explicit gasPrice", async () => {
  const fees = await provider.getFeeData();
  const before = await provider.getBalance(config.recipient);
  const tx = await wallet.sendTransaction({
    to: config.recipient,
    value: 1000n,
    gasPrice: fees.gasPrice,
    type: 0,
  });
  const receipt = await tx.wait();
  check(receipt.status === 1, "legacy transfer failed");
  check(receipt.type === 0, `receipt type ${receipt.type}`);
  const after = await provider.getBalance(config.recipient);
  check(after - before === 1000n, `recipient got ${after - before}`);
  return receipt.hash;
});

await step("EIP-1559 transfer", async () => {
  const tx = await wallet.sendTransaction({ to: config.recipient, value: 1n });
  const receipt = await tx.wait();
  check(receipt.status === 1 && receipt.type === 2, `status ${receipt.status} type ${receipt.type}`);
  const mined = await provider.getTransaction(tx.hash);
  check(mined.blockNumber === receipt.blockNumber, "transaction and receipt disagree");
  return receipt.gasUsed;
});

await step("deploy a contract", async () => {
  const factory = new ethers.ContractFactory(config.abi, config.bytecode, wallet);
  const contract = await factory.deploy();
  await contract.waitForDeployment();
  deployedAt = await contract.getAddress();
  const code = await provider.getCode(deployedAt);
  check(code.length > 2, "no code at the deployed address");
  probe = new ethers.Contract(deployedAt, config.abi, wallet);
  return deployedAt;
});

await step("eth_call a view", async () => {
  const doubled = await probe.double(4n);
  check(doubled === 8n, `double(4) = ${doubled}`);
  return doubled;
});

await step("revert reason of a call", async () => {
  try {
    await probe.double(20n);
  } catch (error) {
    check(error.code === "CALL_EXCEPTION", `code ${error.code}`);
    check(error.reason === "probe: too big", `reason ${error.reason}`);
    return error.reason;
  }
  throw new Error("double(20) did not revert");
});

await step("estimateGas", async () => {
  const gas = await probe.ping.estimateGas(3n);
  check(gas > 21000n && gas < 200000n, `estimate ${gas}`);
  const transfer = await provider.estimateGas({ to: config.recipient, value: 1n });
  check(transfer === 21000n, `transfer estimate ${transfer}`);
  return gas;
});

await step("contract transaction with explicit gasPrice", async () => {
  const fees = await provider.getFeeData();
  const tx = await probe.ping(5n, { gasPrice: fees.gasPrice });
  const receipt = await tx.wait();
  check(receipt.status === 1, "ping failed");
  const parsed = receipt.logs.map((log) => probe.interface.parseLog(log));
  check(parsed.length === 1 && parsed[0].args.value === 5n, "no Ping(5) in the receipt");
  return receipt.blockNumber;
});

await step("contract transaction, EIP-1559", async () => {
  const tx = await probe.ping(7n);
  const receipt = await tx.wait();
  check(receipt.status === 1, "ping failed");
  check((await probe.counter()) === 12n, "counter is not 5 + 7");
  return receipt.blockNumber;
});

await step("getLogs and queryFilter", async () => {
  const events = await probe.queryFilter(probe.filters.Ping(wallet.address), 0, "latest");
  const values = events.map((event) => event.args.value);
  check(values.length === 2 && values[0] === 5n && values[1] === 7n, `values ${values}`);
  const logs = await provider.getLogs({ address: deployedAt, fromBlock: 0, toBlock: "latest" });
  check(logs.length === 2, `${logs.length} logs`);
  check(logs.every((log) => log.index >= 0 && log.blockHash), "logs lack index/blockHash");
  return values.join(",");
});

await step("a failed transaction is reported as such", async () => {
  try {
    const tx = await probe.ping(5000n, { gasLimit: 100000n });
    await tx.wait();
  } catch (error) {
    check(error.code === "CALL_EXCEPTION", `code ${error.code}`);
    return "CALL_EXCEPTION";
  }
  throw new Error("ping(5000) did not fail");
});

provider.destroy();
process.exit(failed ? 1 : 0);
