// The web UI's one script: the browser wallet (EIP-6963 discovery, EIP-1193 requests through
// ethers v6) signs the sign-in message and every transaction; the server never holds a key.
// Bundled with esbuild at install time (make setup) into ../static/app.js: nothing from a CDN.
import { BrowserProvider, Contract, Interface, getAddress } from "ethers";

const config = JSON.parse(document.getElementById("db-config")?.textContent ?? "{}");
const announced = [];
window.addEventListener("eip6963:announceProvider", (event) => announced.push(event.detail));
window.dispatchEvent(new Event("eip6963:requestProvider"));

const statusBox = document.getElementById("tx-status");

function say(text, error = false) {
  // textContent, never innerHTML: messages can quote a revert reason from the chain.
  statusBox.hidden = false;
  statusBox.textContent = text;
  statusBox.classList.toggle("error", error);
}

function wallet() {
  const injected = announced[0]?.provider ?? window.ethereum;
  if (!injected) {
    throw new Error("No browser wallet found: install an Ethereum wallet extension and reload this page.");
  }
  return injected;
}

async function signer() {
  const provider = new BrowserProvider(wallet());
  const network = await provider.getNetwork();
  if (Number(network.chainId) !== config.chainId) {
    throw new Error(
      `Your wallet is on chain ${network.chainId}; this market is on chain ${config.chainId}: switch networks in the wallet and try again.`,
    );
  }
  return provider.getSigner();
}

function reason(error) {
  // ethers puts the contract's revert string in `reason`; a refusal in the wallet is code 4001.
  if (error?.code === "ACTION_REJECTED" || error?.info?.error?.code === 4001) {
    return "You declined in your wallet; nothing was sent.";
  }
  // A wallet's own JSON-RPC error comes wrapped: show the wallet's words, not the wrapper's.
  const inner = error?.info?.error?.message ?? error?.error?.message;
  return error?.reason ?? inner ?? error?.shortMessage ?? error?.message ?? String(error);
}

async function problemText(response) {
  try {
    const body = await response.json();
    return body.detail ?? `${response.status} ${response.statusText}`;
  } catch {
    return `${response.status} ${response.statusText}`;
  }
}

async function indexed(block) {
  // The pages read lists from the index: wait until it holds the transaction's block.
  for (let i = 0; i < 100; i++) {
    const status = await (await fetch("/api/v1/status")).json();
    if (status.index.indexed_block >= block) return;
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

async function send(what, call) {
  say(`${what}: waiting for your wallet…`);
  const tx = await call();
  say(`${what}: sent ${tx.hash}; waiting for it to be mined…`);
  const receipt = await tx.wait();
  if (receipt.status !== 1) throw new Error(`${what} was reverted in block ${receipt.blockNumber}.`);
  say(`${what}: confirmed in block ${receipt.blockNumber}; updating the page…`);
  await indexed(receipt.blockNumber);
  return receipt;
}

function siweMessage(address, nonce) {
  // EIP-4361; the server checks every field (domain, chain, nonce, times).
  const now = new Date();
  const expires = new Date(now.getTime() + 10 * 60 * 1000);
  return [
    `${location.host} wants you to sign in with your Ethereum account:`,
    address,
    "",
    "Sign in to DataBright. This signature costs nothing and sends no transaction.",
    "",
    `URI: ${location.origin}`,
    "Version: 1",
    `Chain ID: ${config.chainId}`,
    `Nonce: ${nonce}`,
    `Issued At: ${now.toISOString()}`,
    `Expiration Time: ${expires.toISOString()}`,
  ].join("\n");
}

const actions = {
  async signin() {
    const s = await signer();
    const address = getAddress(await s.getAddress());
    const { nonce } = await (await fetch("/api/v1/auth/nonce")).json();
    say("Sign-in: sign the message in your wallet…");
    const message = siweMessage(address, nonce);
    const signature = await s.signMessage(message);
    const response = await fetch("/api/v1/auth/siwe", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ message, signature }),
    });
    if (!response.ok) throw new Error(`Sign-in refused: ${await problemText(response)}`);
    say(`Signed in as ${address}.`);
    location.reload();
  },

  async signout() {
    await fetch("/api/v1/auth/logout", { method: "POST" });
    location.reload();
  },

  async vote(el) {
    const market = new Contract(config.market, config.abi.DataMarket, await signer());
    const support = el.dataset.support === "true";
    await send(support ? "Vote yes" : "Vote no", () => market.vote(BigInt(el.dataset.proposal), support));
    location.reload();
  },

  async finalize(el) {
    const market = new Contract(config.market, config.abi.DataMarket, await signer());
    await send("Finalize", () => market.finalize(BigInt(el.dataset.proposal)));
    location.reload();
  },

  async claim(el) {
    const token = new Contract(el.dataset.token, config.abi.ShareToken, await signer());
    await send("Claim", () => token["claim()"]());
    location.reload();
  },

  async "buy-access"(el) {
    const register = new Contract(el.dataset.access, config.abi.DataAccess, await signer());
    const me = await (await signer()).getAddress();
    await send("Buy access", () =>
      register.buy(BigInt(el.dataset.dataset), me, { value: BigInt(el.dataset.price) }),
    );
    location.reload();
  },

  async comment(form) {
    const s = await signer();
    const forum = await (await fetch("/api/v1/forum")).json();
    const body = form.elements.body.value;
    const message = {
      proposal_id: BigInt(form.dataset.proposal),
      parent: 0n,
      body,
      created_at: BigInt(Math.floor(Date.now() / 1000)),
    };
    say("Comment: sign it in your wallet…");
    const signature = await s.signTypedData(forum.domain, { Comment: forum.types.Comment }, message);
    const response = await fetch(`/api/v1/proposals/${form.dataset.ref}/comments`, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({
        author: await s.getAddress(),
        body,
        parent: null,
        created_at: Number(message.created_at),
        signature,
      }),
    });
    if (!response.ok) throw new Error(`Comment refused: ${await problemText(response)}`);
    location.reload();
  },

  async predict(form) {
    const out = document.getElementById("prediction");
    out.textContent = "";
    const s = await signer();
    const user = getAddress(await s.getAddress());
    const modelId = BigInt(form.dataset.model);
    const price = BigInt(form.dataset.price);
    let inputs;
    try {
      inputs = JSON.parse(form.elements.inputs.value);
    } catch {
      throw new Error("The examples are not JSON: write a list of examples, e.g. [[0, 1.5, …]].");
    }
    if (!Array.isArray(inputs) || inputs.length === 0) {
      throw new Error("Write at least one example: a list of lists of numbers.");
    }
    const node = new URL(form.elements.node.value).origin;
    const cost = price * BigInt(inputs.length);
    const last = await fetch(`${node}/api/v1/models/${modelId}/receipts/${user}`);
    if (!last.ok) throw new Error(`The serving node refused: ${await problemText(last)}`);
    const { total_wei: total, nonce } = await last.json();
    const owed = BigInt(total) + cost;
    const models = new Contract(config.modelMarket, config.abi.ModelMarket, s);
    const escrow = await models.escrow(modelId, user);
    if (escrow.deposited < owed) {
      const more = owed - escrow.deposited + price * 10n;
      await send("Deposit into your escrow", () => models.deposit(modelId, { value: more }));
    }
    say("Prediction: sign the receipt in your wallet…");
    const receipt = { model_id: modelId, user, total: owed, nonce: BigInt(nonce) + 1n };
    const signature = await s.signTypedData(config.receiptDomain, config.receiptTypes, receipt);
    const answer = await fetch(`${node}/api/v1/models/${modelId}/predict`, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({
        inputs,
        receipt: {
          model_id: Number(modelId),
          user,
          total: owed.toString(),
          nonce: Number(receipt.nonce),
          signature,
        },
      }),
    });
    if (!answer.ok) throw new Error(`The serving node refused: ${await problemText(answer)}`);
    const result = await answer.json();
    out.textContent = `Predictions: ${result.predictions.join(", ")}; paid ${result.paid_wei} wei (${result.total_wei} wei in all).`;
    say("Prediction served and paid.");
  },

  async propose(form) {
    const s = await signer();
    const dataset = form.dataset.dataset;
    say("Proposal: checking and storing your file…");
    const upload = await fetch(`/api/v1/datasets/${dataset}/uploads`, {
      method: "POST",
      body: new FormData(form),
    });
    if (!upload.ok) throw new Error(`Your file was refused: ${await problemText(upload)}`);
    const terms = await upload.json();
    const market = new Contract(config.market, config.abi.DataMarket, s);
    await send("Commitment (1 of 2)", () => market.commit_proposal(terms.commitment));
    const receipt = await send("Proposal (2 of 2)", () =>
      market.propose(
        BigInt(terms.dataset_id),
        terms.data_cid_digest,
        terms.manifest_root,
        BigInt(terms.examples),
        terms.metadata_cid_digest,
        { value: BigInt(terms.payment_wei) },
      ),
    );
    const events = new Interface(config.abi.DataMarket);
    for (const log of receipt.logs) {
      const parsed = events.parseLog(log);
      if (parsed?.name === "ProposalCreated") {
        const id = parsed.args.proposal_id;
        const number = id & ((1n << BigInt(config.seqBits)) - 1n);
        location.assign(`/ui/proposals/${dataset}/${number}`);
        return;
      }
    }
    location.assign(`/ui/datasets/${dataset}`);
  },
};

async function run(name, el, event) {
  event.preventDefault();
  const controls = el.tagName === "FORM" ? [...el.querySelectorAll("button")] : [el];
  controls.forEach((c) => (c.disabled = true));
  try {
    await actions[name](el);
  } catch (error) {
    say(reason(error), true);
  } finally {
    controls.forEach((c) => (c.disabled = false));
  }
}

document.addEventListener("click", (event) => {
  const el = event.target.closest("button[data-action]");
  if (el && actions[el.dataset.action]) run(el.dataset.action, el, event);
});
document.addEventListener("submit", (event) => {
  const form = event.target.closest("form[data-action]");
  if (form && actions[form.dataset.action]) run(form.dataset.action, form, event);
});
for (const t of document.querySelectorAll("time[data-unix]")) {
  t.textContent = new Date(Number(t.dataset.unix) * 1000).toLocaleString();
}
document.documentElement.dataset.ready = "true";
