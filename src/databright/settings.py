"""The one place DataBright reads its environment: ``Settings``, from ``DATABRIGHT_*`` variables.

Built once per process by :func:`get_settings` and handed down as plain values (a data dir, a
password), so library code below the CLI never reads ``os.environ`` itself and tests can pass
their own. Every variable is optional; the defaults are the embedded development setup.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from databright.errors import InvalidArgument

__all__ = ["DEFAULT_HOME", "DEFAULT_RPC", "DEV_PASSWORD", "Settings", "get_settings"]

#: Documented, public development password of the embedded node's dev accounts and of new
#: keystores when none is given: fine for a local chain, never for anything that holds value.
DEV_PASSWORD = "databright-dev"
DEFAULT_HOME = Path(".databright")
DEFAULT_RPC = "http://127.0.0.1:8545"


class Settings(BaseSettings):
    """DataBright's configuration; each field is read from ``DATABRIGHT_<FIELD>``."""

    model_config = SettingsConfigDict(env_prefix="DATABRIGHT_", extra="ignore", frozen=True)

    home: Path = Field(
        default=DEFAULT_HOME, description="Data dir: keystores, deployments, blobs, node state."
    )
    rpc: str = Field(default=DEFAULT_RPC, description="JSON-RPC URL of an EVM node.")
    # A SecretStr keeps the password out of reprs, logs and tracebacks.
    password: SecretStr | None = Field(
        default=None, description="Keystore password; unset means the development password."
    )
    debug: bool = Field(default=False, description="Show tracebacks instead of one-line errors.")
    hash_workers: int | None = Field(
        default=None, description="Processes that hash a large proposal (1 turns it off)."
    )
    anvil: Path | None = Field(default=None, description="anvil binary for tests and benchmarks.")
    database_url: str | None = Field(
        default=None,
        description="SQLAlchemy URL of the server's index (default: SQLite in the data dir).",
    )
    # NoDecode: a comma-separated list, not JSON, is what people type in a shell.
    blob_sources: Annotated[tuple[str, ...], NoDecode] = Field(
        default=(),
        description="Comma-separated URLs of stores or IPFS gateways to fetch missing blobs from.",
    )

    @field_validator("blob_sources", mode="before")
    @classmethod
    def _source_list(cls, value: object) -> tuple[str, ...]:
        if isinstance(value, str):
            items = value.replace(",", " ").split()
        elif isinstance(value, list | tuple):
            items = [str(v) for v in value]
        else:
            raise ValueError("expected a comma-separated list of URLs")
        for item in items:
            parts = urlsplit(str(item))
            if parts.scheme not in ("http", "https") or not parts.netloc:
                raise ValueError(f"{item!r} is not an http:// or https:// URL")
        return tuple(str(item).rstrip("/") for item in items)

    @field_validator("hash_workers", mode="before")
    @classmethod
    def _lenient_workers(cls, value: object) -> int | None:
        # A tuning knob: a bad value means "no parallel hashing", never a refused proposal.
        if value is None or (isinstance(value, str) and not value.strip()):
            return None
        try:
            return max(1, int(str(value).strip()))
        except ValueError:
            return 1

    @property
    def password_set(self) -> bool:
        """Whether the user chose a password (scripts then never get a prompt)."""
        return self.password is not None and bool(self.password.get_secret_value())

    def keystore_password(self) -> str:
        """The password that opens keystores: the user's, else the development one."""
        if self.password_set:
            assert self.password is not None
            return self.password.get_secret_value()
        return DEV_PASSWORD


def get_settings() -> Settings:
    """The settings in the environment now (cheap; the CLI builds them once per command).

    A malformed variable is an :class:`InvalidArgument` naming it, not a validation traceback.
    """
    try:
        return Settings()
    except ValidationError as exc:
        first = exc.errors()[0]
        name = "DATABRIGHT_" + str(first["loc"][0]).upper() if first["loc"] else "DATABRIGHT_*"
        raise InvalidArgument(
            f"environment variable {name} is not valid ({first['msg']}); fix or unset it"
        ) from None
