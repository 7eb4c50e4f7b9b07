"""The client side of any EVM node: what a participant needs to talk to the market's contracts.

``connect`` gives a :class:`Gateway` (local signing, local nonces, gas cache, one error per
failure); contract clients and typed views are generated from the committed artifacts
(``clients``); ``deploy`` deploys what a chain lacks; ``Keystore`` holds encrypted accounts.
The embedded development node is a server and lives in :mod:`databright.node`.
"""

from databright.chain.contract import ContractClient
from databright.chain.deploy import Deployment, deploy, load_deployment
from databright.chain.events import Event, Receipt
from databright.chain.gateway import Gateway, connect
from databright.chain.keystore import Keystore
from databright.chain.reverts import Revert, RevertDecoder, decode_revert

__all__ = [
    "ContractClient",
    "Deployment",
    "Event",
    "Gateway",
    "Keystore",
    "Receipt",
    "Revert",
    "RevertDecoder",
    "connect",
    "decode_revert",
    "deploy",
    "load_deployment",
]
