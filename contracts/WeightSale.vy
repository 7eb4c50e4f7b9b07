# pragma version ~=0.4.3
# pragma evm-version cancun
# pragma nonreentrancy off
# pragma optimize gas
"""
@title DataBright Weight Sale
@custom:contract-name WeightSale
@license Apache-2.0
@notice Sells a benchmarked checkpoint outright, fairly, without ever
        looking at it (FairSwap: Dziembowski, Eckey, Faust 2018). The
        buyer's payment is escrowed; the seller delivers the weights
        encrypted off-chain; the payment is released only if the buyer
        can decrypt exactly the weights the evaluator benchmarked, and a
        seller who delivers wrong weights or a wrong key is proven wrong
        on-chain by a short proof of misbehaviour: one 1 KiB chunk and two
        Merkle paths. `databright.models.sale` computes every off-chain
        value below and judges complaints exactly as `complain` does.

        Weights root. The checkpoint's bytes are cut into `CHUNK` = 1024
        byte chunks (the last zero-padded), `leaf_i = keccak256(chunk_i)`,
        over a positional binary Merkle tree padded with zero leaves to a
        power of two (parent `keccak256(left ++ right)`); its root, the
        chunk count and the byte length give the weights root
        `keccak256(abi_encode(tree_root, n_chunks, byte_length))` that the
        `ModelMarket` registers for the version and that its evaluator
        checked against the checkpoint it scored. Proofs must be exactly
        as long as the tree is deep, so an inner node cannot pose as a
        leaf, and the index must be below `n_chunks`, so no padding leaf
        can be disputed.

        Encryption. With a random 32-byte `key`, word `j` of chunk `i` is
        XORed with `keccak256(abi_encode(key, sale_id, i, j))`. The pad
        depends on the sale, and the key commitment
        `keccak256(abi_encode(key, sale_id))` is bound to it, so a key or a
        commitment from one sale cannot be replayed into another, and two
        sales never share a pad. `cipher_root` is the same tree over
        `keccak256(cipher_chunk_i)`.

        Protocol (one sale per purchase; one listing serves any number of
        buyers):
        1. `list_weights(model_id, version, price, tree_root, n_chunks,
           byte_length)` by the model's owner, for a benchmarked version;
           the layout must hash to the registered weights root (so the
           listing shows the size for sale). `unlist` stops new sales.
           The seller also publishes a weights manifest (every leaf),
           whence buyers learn the leaves they will need to complain.
        2. `buy(model_id, version)` with `msg.value == price`: the price
           is escrowed and the sale opens (`PAID`); the seller, still the
           model's owner, must deliver within `DELIVERY_WINDOW`.
        3. `deliver(sale_id, cipher_root, key_commitment)` by the seller;
           the ciphertext goes to the buyer off-chain (`DELIVERED`).
        4. The buyer checks that the ciphertext has `n_chunks` chunks and
           gives `cipher_root`, then `accept`s (`ACCEPTED`): from now on it
           cannot leave. Until it accepts, `cancel` refunds it at any time:
           it holds nothing it can decrypt, so the seller loses only gas.
           Acceptance is what makes the scheme fair: without it a seller
           could post a root, send nothing and reveal a useless key.
        5. `reveal_key(sale_id, key)` by the seller within `REVEAL_WINDOW`
           of the acceptance; the key must open the commitment
           (`REVEALED`). If it does not come in time, `refund` (anyone may
           call it) gives the buyer its money back.
        6. Within `COMPLAINT_WINDOW` of the reveal, the buyer may
           `complain` with chunk `index` of the ciphertext, its proof
           against `cipher_root`, the benchmarked leaf `index` and its proof
           against the listed tree root. If the chunk, decrypted with the
           revealed key, does not hash to that leaf, the seller cheated
           (wrong weights or a key that is not the one it encrypted with):
           the buyer is refunded. A complaint that does not hold reverts.
        7. After the window (or earlier, when the buyer `settle`s itself)
           `settle` credits the seller (`SETTLED`).
        Money moves only by pull payments: refunds and proceeds are
        credited to `balance_of`, and `withdraw` sends them out.
        Invariant: this contract's balance is at least
        `escrowed + credited` (equal unless ETH was forced in).

        Changes from the first outline: the tree layout is given at
        listing (and checked against the registered root) instead of in
        every complaint; the pad and the key commitment both include the
        sale id; `buy` checks that the lister still owns the model;
        `cancel` is open before acceptance instead of only after the
        delivery deadline; the buyer may waive its complaint window.
@custom:security Payments are pull payments; `withdraw` is
                 `@nonreentrant` and follows checks-effects-interactions.
                 The key is public once revealed: the ciphertext is the
                 secret, shared only with the buyer.
"""


# @dev The views of the model market this sale reads.
from interfaces import IModelMarket


# @dev Sale statuses.
STATUS_NONE: public(constant(uint8)) = 0
STATUS_PAID: public(constant(uint8)) = 1
STATUS_DELIVERED: public(constant(uint8)) = 2
STATUS_ACCEPTED: public(constant(uint8)) = 3
STATUS_REVEALED: public(constant(uint8)) = 4
STATUS_SETTLED: public(constant(uint8)) = 5
STATUS_REFUNDED: public(constant(uint8)) = 6


# @dev Why a buyer was refunded (`Refunded.reason`).
REFUND_CANCELLED: public(constant(uint8)) = 1
REFUND_NOT_REVEALED: public(constant(uint8)) = 2
REFUND_COMPLAINT: public(constant(uint8)) = 3


# @dev Bytes per chunk, and its 32-byte words.
CHUNK: public(constant(uint256)) = 1024
CHUNK_WORDS: constant(uint256) = 32


# @dev The deepest weights tree (2**40 chunks, 1 PiB).
MAX_DEPTH: public(constant(uint256)) = 40


# @dev Seconds the seller has to deliver after a purchase.
DELIVERY_WINDOW: public(constant(uint256)) = 86_400


# @dev Seconds the seller has to reveal the key after acceptance.
REVEAL_WINDOW: public(constant(uint256)) = 86_400


# @dev Seconds the buyer has to complain after the reveal.
COMPLAINT_WINDOW: public(constant(uint256)) = 86_400


# @dev The model market whose models are sold here.
model_market: public(immutable(address))


# @dev A listing; `seller` is empty when not listed. The layout
# (`tree_root`, `n_chunks`, `byte_length`) hashes to the version's
# weights root and stays after `unlist` for the sales under way.
struct Listing:
    seller: address
    price: uint256
    tree_root: bytes32
    n_chunks: uint256
    byte_length: uint256


# @dev A sale. `deadline` is the end of the current phase
# (delivery, reveal or complaint; 0 once closed).
struct Sale:
    buyer: address
    seller: address
    model_id: uint256
    version: uint256
    price: uint256
    status: uint8
    deadline: uint256
    cipher_root: bytes32
    key_commitment: bytes32
    key: bytes32


# @dev Model id => version => listing.
_listings: HashMap[uint256, HashMap[uint256, Listing]]


# @dev Sale id => sale; ids run from 1.
_sales: HashMap[uint256, Sale]


# @dev The number of sales.
sale_count: public(uint256)


# @dev Account => wei it may withdraw.
balance_of: public(HashMap[address, uint256])


# @dev The prices held for open sales, in wei.
escrowed: public(uint256)


# @dev The sum of all `balance_of`, in wei.
credited: public(uint256)


event Listed:
    model_id: indexed(uint256)
    version: indexed(uint256)
    seller: indexed(address)
    price: uint256
    tree_root: bytes32
    n_chunks: uint256
    byte_length: uint256


event Unlisted:
    model_id: indexed(uint256)
    version: indexed(uint256)


event Bought:
    sale_id: indexed(uint256)
    buyer: indexed(address)
    seller: indexed(address)
    model_id: uint256
    version: uint256
    price: uint256
    deadline: uint256


event Delivered:
    sale_id: indexed(uint256)
    cipher_root: bytes32
    key_commitment: bytes32


event Accepted:
    sale_id: indexed(uint256)
    deadline: uint256


event KeyRevealed:
    sale_id: indexed(uint256)
    key: bytes32
    deadline: uint256


event Complained:
    sale_id: indexed(uint256)
    index: uint256


event Refunded:
    sale_id: indexed(uint256)
    buyer: indexed(address)
    amount: uint256
    reason: uint8


event Settled:
    sale_id: indexed(uint256)
    seller: indexed(address)
    amount: uint256


event Withdrawn:
    account: indexed(address)
    receiver: indexed(address)
    amount: uint256


@deploy
def __init__(model_market_: address):
    """
    @dev Binds the sale to one model market.
    @param model_market_ The 20-byte `ModelMarket` address.
    """
    assert model_market_ != empty(address), "weight_sale: zero model market"
    model_market = model_market_


@external
def list_weights(
    model_id: uint256,
    version: uint256,
    price: uint256,
    tree_root: bytes32,
    n_chunks: uint256,
    byte_length: uint256,
):
    """
    @dev Offers a benchmarked version's weights at `price`, or
         changes the price of a listing.
    @notice Only the model's owner. The layout must hash to the
            version's registered weights root.
    @param model_id The 32-byte model id.
    @param version The 32-byte version number.
    @param price The 32-byte price in wei (non-zero).
    @param tree_root The 32-byte Merkle root of the chunk leaves.
    @param n_chunks The 32-byte number of chunks.
    @param byte_length The 32-byte checkpoint size in bytes.
    """
    market: IModelMarket = IModelMarket(model_market)
    assert staticcall market.owner_of(model_id) == msg.sender, "weight_sale: not the model owner"
    assert staticcall market.is_benchmarked(model_id, version), "weight_sale: version not benchmarked"
    assert price != 0, "weight_sale: zero price"
    assert n_chunks != 0 and n_chunks <= 1 << MAX_DEPTH, "weight_sale: bad chunk count"
    assert (n_chunks - 1) * CHUNK < byte_length and byte_length <= n_chunks * CHUNK, "weight_sale: size does not fit chunks"
    root: bytes32 = staticcall market.weights_root(model_id, version)
    assert root != empty(bytes32), "weight_sale: weights not for sale"
    assert keccak256(abi_encode(tree_root, n_chunks, byte_length)) == root, "weight_sale: layout does not give the weights root"
    self._listings[model_id][version] = Listing(
        seller=msg.sender, price=price, tree_root=tree_root, n_chunks=n_chunks, byte_length=byte_length
    )
    log Listed(
        model_id=model_id,
        version=version,
        seller=msg.sender,
        price=price,
        tree_root=tree_root,
        n_chunks=n_chunks,
        byte_length=byte_length,
    )


@external
def unlist(model_id: uint256, version: uint256):
    """
    @dev Withdraws a listing; sales under way go on.
    @notice Only the seller who listed it.
    @param model_id The 32-byte model id.
    @param version The 32-byte version number.
    """
    assert self._listings[model_id][version].seller == msg.sender, "weight_sale: not the seller"
    self._listings[model_id][version].seller = empty(address)
    self._listings[model_id][version].price = 0
    log Unlisted(model_id=model_id, version=version)


@external
@payable
def buy(model_id: uint256, version: uint256) -> uint256:
    """
    @dev Buys a listed version's weights; the payment is escrowed.
    @notice `msg.value` must equal the listed price (a price changed
            meanwhile makes the purchase revert). The seller must
            still own the model.
    @param model_id The 32-byte model id.
    @param version The 32-byte version number.
    @return uint256 The new sale id.
    """
    listing: Listing = self._listings[model_id][version]
    assert listing.seller != empty(address), "weight_sale: not listed"
    assert msg.value == listing.price, "weight_sale: wrong payment"
    assert staticcall IModelMarket(model_market).owner_of(model_id) == listing.seller, "weight_sale: seller no longer owns the model"
    sale_id: uint256 = self.sale_count + 1
    self.sale_count = sale_id
    deadline: uint256 = block.timestamp + DELIVERY_WINDOW
    self._sales[sale_id] = Sale(
        buyer=msg.sender,
        seller=listing.seller,
        model_id=model_id,
        version=version,
        price=msg.value,
        status=STATUS_PAID,
        deadline=deadline,
        cipher_root=empty(bytes32),
        key_commitment=empty(bytes32),
        key=empty(bytes32),
    )
    self.escrowed += msg.value
    log Bought(
        sale_id=sale_id,
        buyer=msg.sender,
        seller=listing.seller,
        model_id=model_id,
        version=version,
        price=msg.value,
        deadline=deadline,
    )
    return sale_id


@external
def deliver(sale_id: uint256, cipher_root: bytes32, key_commitment: bytes32):
    """
    @dev Commits to the ciphertext handed to the buyer off-chain
         and to its key.
    @notice Only the seller, before the delivery deadline.
    @param sale_id The 32-byte sale id.
    @param cipher_root The 32-byte Merkle root of the ciphertext chunks.
    @param key_commitment The 32-byte `keccak256(abi_encode(key, sale_id))`.
    """
    s: Sale = self._sales[sale_id]
    assert s.status == STATUS_PAID, "weight_sale: not awaiting delivery"
    assert msg.sender == s.seller, "weight_sale: not the seller"
    assert block.timestamp <= s.deadline, "weight_sale: delivery too late"
    self._sales[sale_id].status = STATUS_DELIVERED
    self._sales[sale_id].deadline = 0
    self._sales[sale_id].cipher_root = cipher_root
    self._sales[sale_id].key_commitment = key_commitment
    log Delivered(sale_id=sale_id, cipher_root=cipher_root, key_commitment=key_commitment)


@external
def cancel(sale_id: uint256):
    """
    @dev Ends a sale the buyer has not accepted and refunds it.
    @notice Only the buyer, before `accept`: for a delivery that
            never came, or a ciphertext that does not match its root.
    @param sale_id The 32-byte sale id.
    """
    s: Sale = self._sales[sale_id]
    assert s.status == STATUS_PAID or s.status == STATUS_DELIVERED, "weight_sale: cannot cancel now"
    assert msg.sender == s.buyer, "weight_sale: not the buyer"
    self._refund(sale_id, s.buyer, s.price, REFUND_CANCELLED)


@external
def accept(sale_id: uint256):
    """
    @dev Confirms the buyer holds the ciphertext matching the
         delivery; the seller may now reveal the key.
    @notice Only the buyer. The sale can no longer be cancelled.
    @param sale_id The 32-byte sale id.
    """
    s: Sale = self._sales[sale_id]
    assert s.status == STATUS_DELIVERED, "weight_sale: nothing delivered"
    assert msg.sender == s.buyer, "weight_sale: not the buyer"
    deadline: uint256 = block.timestamp + REVEAL_WINDOW
    self._sales[sale_id].status = STATUS_ACCEPTED
    self._sales[sale_id].deadline = deadline
    log Accepted(sale_id=sale_id, deadline=deadline)


@external
def reveal_key(sale_id: uint256, key: bytes32):
    """
    @dev Reveals the key of an accepted delivery; the complaint
         window opens.
    @notice Only the seller, before the reveal deadline; `key` must
            open the commitment.
    @param sale_id The 32-byte sale id.
    @param key The 32-byte key.
    """
    s: Sale = self._sales[sale_id]
    assert s.status == STATUS_ACCEPTED, "weight_sale: not accepted"
    assert msg.sender == s.seller, "weight_sale: not the seller"
    assert block.timestamp <= s.deadline, "weight_sale: reveal too late"
    assert keccak256(abi_encode(key, sale_id)) == s.key_commitment, "weight_sale: key does not open the commitment"
    deadline: uint256 = block.timestamp + COMPLAINT_WINDOW
    self._sales[sale_id].status = STATUS_REVEALED
    self._sales[sale_id].deadline = deadline
    self._sales[sale_id].key = key
    log KeyRevealed(sale_id=sale_id, key=key, deadline=deadline)


@external
def refund(sale_id: uint256):
    """
    @dev Refunds the buyer of an accepted sale whose key was not
         revealed in time.
    @notice Anyone may call it after the reveal deadline.
    @param sale_id The 32-byte sale id.
    """
    s: Sale = self._sales[sale_id]
    assert s.status == STATUS_ACCEPTED, "weight_sale: not awaiting the key"
    assert block.timestamp > s.deadline, "weight_sale: reveal window open"
    self._refund(sale_id, s.buyer, s.price, REFUND_NOT_REVEALED)


@external
def complain(
    sale_id: uint256,
    index: uint256,
    cipher_chunk: bytes32[CHUNK_WORDS],
    cipher_proof: DynArray[bytes32, MAX_DEPTH],
    plain_leaf: bytes32,
    plain_proof: DynArray[bytes32, MAX_DEPTH],
):
    """
    @dev Proves that chunk `index` of the delivery does not decrypt,
         under the revealed key, to the benchmarked chunk; refunds
         the buyer. Reverts when the complaint does not hold.
    @notice Only the buyer, within the complaint window.
    @param sale_id The 32-byte sale id.
    @param index The 32-byte chunk index (below `n_chunks`).
    @param cipher_chunk The chunk of the ciphertext, 32 words.
    @param cipher_proof The chunk's leaf's siblings up to
           `cipher_root`, bottom first.
    @param plain_leaf The 32-byte leaf of the benchmarked chunk.
    @param plain_proof Its siblings up to the listed tree root.
    """
    s: Sale = self._sales[sale_id]
    assert s.status == STATUS_REVEALED, "weight_sale: no key revealed"
    assert msg.sender == s.buyer, "weight_sale: not the buyer"
    assert block.timestamp <= s.deadline, "weight_sale: complaint window closed"
    listing: Listing = self._listings[s.model_id][s.version]
    assert index < listing.n_chunks, "weight_sale: no such chunk"
    depth: uint256 = self._depth(listing.n_chunks)
    assert len(cipher_proof) == depth and len(plain_proof) == depth, "weight_sale: proof length is not the tree depth"
    assert self._root(keccak256(abi_encode(cipher_chunk)), index, cipher_proof) == s.cipher_root, "weight_sale: chunk not in the delivery"
    assert self._root(plain_leaf, index, plain_proof) == listing.tree_root, "weight_sale: leaf not in the weights"
    plain: bytes32[CHUNK_WORDS] = empty(bytes32[CHUNK_WORDS])
    for j: uint256 in range(CHUNK_WORDS):
        word: uint256 = convert(cipher_chunk[j], uint256) ^ convert(
            keccak256(abi_encode(s.key, sale_id, index, j)), uint256
        )
        plain[j] = convert(word, bytes32)
    assert keccak256(abi_encode(plain)) != plain_leaf, "weight_sale: chunk decrypts correctly"
    log Complained(sale_id=sale_id, index=index)
    self._refund(sale_id, s.buyer, s.price, REFUND_COMPLAINT)


@external
def settle(sale_id: uint256):
    """
    @dev Credits the seller once the complaint window has passed.
    @notice Anyone may call it after the window; the buyer may call
            it earlier, waiving its complaint.
    @param sale_id The 32-byte sale id.
    """
    s: Sale = self._sales[sale_id]
    assert s.status == STATUS_REVEALED, "weight_sale: not awaiting settlement"
    assert block.timestamp > s.deadline or msg.sender == s.buyer, "weight_sale: complaint window open"
    self._sales[sale_id].status = STATUS_SETTLED
    self._sales[sale_id].deadline = 0
    self.escrowed -= s.price
    self.balance_of[s.seller] += s.price
    self.credited += s.price
    log Settled(sale_id=sale_id, seller=s.seller, amount=s.price)


@external
@nonreentrant
def withdraw(receiver: address = msg.sender) -> uint256:
    """
    @dev Sends the caller's credited wei to `receiver`.
    @notice Pull payment: the balance is cleared before the ETH is
            sent, and the function is `@nonreentrant`.
    @param receiver The 20-byte address that receives the ETH.
    @return uint256 The amount sent, in wei.
    """
    assert receiver != empty(address), "weight_sale: zero receiver"
    amount: uint256 = self.balance_of[msg.sender]
    assert amount != 0, "weight_sale: nothing to withdraw"
    self.balance_of[msg.sender] = 0
    self.credited -= amount
    log Withdrawn(account=msg.sender, receiver=receiver, amount=amount)
    raw_call(receiver, b"", value=amount)
    return amount


@external
@view
def sale(sale_id: uint256) -> Sale:
    """
    @dev Returns a sale (all zero for an unknown id).
    @param sale_id The 32-byte sale id.
    @return Sale The sale.
    """
    return self._sales[sale_id]


@external
@view
def listing(model_id: uint256, version: uint256) -> Listing:
    """
    @dev Returns a version's listing (`seller` empty when not listed;
         the layout stays once listed).
    @param model_id The 32-byte model id.
    @param version The 32-byte version number.
    @return Listing The listing.
    """
    return self._listings[model_id][version]


@internal
def _refund(sale_id: uint256, buyer: address, amount: uint256, reason: uint8):
    """
    @dev Closes a sale and credits its price back to the buyer.
    @param sale_id The 32-byte sale id.
    @param buyer The 20-byte buyer address.
    @param amount The 32-byte price in wei.
    @param reason The 1-byte refund reason.
    """
    self._sales[sale_id].status = STATUS_REFUNDED
    self._sales[sale_id].deadline = 0
    self.escrowed -= amount
    self.balance_of[buyer] += amount
    self.credited += amount
    log Refunded(sale_id=sale_id, buyer=buyer, amount=amount, reason=reason)


@internal
@pure
def _depth(n_leaves: uint256) -> uint256:
    """
    @dev Returns the depth of the tree over `n_leaves` leaves (0 for
         one leaf): the length every proof must have.
    @param n_leaves The 32-byte leaf count (1 to 2**MAX_DEPTH).
    @return uint256 The 32-byte depth.
    """
    depth: uint256 = 0
    for _: uint256 in range(MAX_DEPTH):
        if 1 << depth >= n_leaves:
            break
        depth += 1
    return depth


@internal
@pure
def _root(leaf: bytes32, index: uint256, proof: DynArray[bytes32, MAX_DEPTH]) -> bytes32:
    """
    @dev Returns the root a positional proof leads to from `leaf`
         at `index` (bit k of `index` set: the node is a right child
         at level k).
    @param leaf The 32-byte leaf.
    @param index The 32-byte leaf index.
    @param proof The siblings, bottom first.
    @return bytes32 The 32-byte root.
    """
    node: bytes32 = leaf
    position: uint256 = index
    for sibling: bytes32 in proof:
        if position & 1 == 0:
            node = keccak256(concat(node, sibling))
        else:
            node = keccak256(concat(sibling, node))
        position >>= 1
    return node
