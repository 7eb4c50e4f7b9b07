"""What the split-training and federation attestation tests show a stage worker or a client:
a coordinator's software attestation, an impostor's, and the refusals each must give."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from eth_account import Account
from eth_account.signers.local import LocalAccount

from databright.compute.coordinator import CoordinatorAttestation

COORDINATOR: LocalAccount = Account.from_key("0x" + "c9" * 32)
IMPOSTOR: LocalAccount = Account.from_key("0x" + "c8" * 32)


@dataclass(frozen=True)
class CopiedEvidence(CoordinatorAttestation):
    """An impostor coordinator: it shows the real coordinator's address and evidence (copied
    from one of its answers) but can sign a challenge only with its own key."""

    copied: dict[str, str] = field(default_factory=dict)

    def answer(self, challenge: bytes, now: float) -> dict[str, str]:
        signed = super().answer(challenge, now)  # over this challenge, by the impostor's key
        return {
            **signed,
            "coordinator": self.copied["coordinator"],
            "evidence": self.copied["evidence"],
        }


def software() -> CoordinatorAttestation:
    return CoordinatorAttestation.software(COORDINATOR, time.time())


def copied() -> CoordinatorAttestation:
    genuine = software().answer(bytes(32), time.time())
    return CopiedEvidence(IMPOSTOR, "software", b"", copied=genuine)


# what the party is shown, what it is told, and the words of its refusal
REFUSALS: list[tuple[Callable[[], CoordinatorAttestation | None], dict[str, Any], str]] = [
    (lambda: None, {"allow_insecure": True}, "offers no attestation evidence"),
    (software, {}, "no hardware vouches for"),
    (software, {"allow_insecure": True, "expected": IMPOSTOR.address}, "not the expected"),
    (copied, {"allow_insecure": True}, "not by the key its evidence binds"),
]
REFUSAL_IDS = ["unattested", "software-without-the-flag", "another-address", "another-key"]
