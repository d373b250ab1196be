"""Settings of integrity sealing (pydantic-settings, ``GITAUDIT_`` prefix).

==================================  ======================================================
``GITAUDIT_SIGNING_KEY_FILE``       Ed25519 private key (PKCS#8 PEM) that signs digests.
                                    Default: ``<data dir>/integrity/signing_key.pem``,
                                    generated (mode 0600) on first use when absent.
``GITAUDIT_DATA_DIR``               data directory; default: the parent of the chDB store
                                    directory (``./data`` for ``chdb://./data/clickhouse``),
                                    or ``./data`` for a ClickHouse server DSN.
``GITAUDIT_SEAL_WINDOW_S``          length of a sealed window, seconds (default 3600).
``GITAUDIT_SEAL_INTERVAL_S``        how often the server's sealer runs, seconds
                                    (default 300; 0 disables the scheduled job).
``GITAUDIT_SEAL_GRACE_S``           the scheduled sealer treats a window as closed only this
                                    many seconds after its end (default 60), so events
                                    still in flight land in the window digest rather than
                                    an addendum. ``gitaudit seal`` uses no grace.
==================================  ======================================================
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class IntegritySettings(BaseSettings):
    """Integrity settings; see the module docstring for the variables."""

    model_config = SettingsConfigDict(env_prefix="GITAUDIT_", extra="ignore")

    signing_key_file: Path | None = None
    data_dir: Path | None = None
    clickhouse_dsn: str = "chdb://./data/clickhouse"
    seal_window_s: int = Field(default=3600, ge=1, le=366 * 86400)
    seal_interval_s: float = Field(default=300, ge=0)
    seal_grace_s: float = Field(default=60, ge=0)

    def resolved_data_dir(self) -> Path:
        """The data directory (see ``GITAUDIT_DATA_DIR`` in the module docstring)."""
        if self.data_dir is not None:
            return self.data_dir
        if urlsplit(self.clickhouse_dsn).scheme == "chdb":
            store_dir = Path(self.clickhouse_dsn[len("chdb://"):]).expanduser()
            return (store_dir if store_dir.is_absolute() else Path.cwd() / store_dir).parent
        return Path.cwd() / "data"

    def key_path(self) -> Path:
        """Path of the signing key file (setting, else ``<data dir>/integrity/signing_key.pem``)."""
        return self.signing_key_file or self.resolved_data_dir() / "integrity" / "signing_key.pem"

    @property
    def window_ns(self) -> int:
        """Window length in nanoseconds."""
        return self.seal_window_s * 1_000_000_000
