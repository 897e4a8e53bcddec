"""The README's configuration table is exactly what Config.describe() says."""

from __future__ import annotations

from pathlib import Path

from server.config import Config

README = Path(__file__).resolve().parents[2] / "README.md"


def test_readme_configuration_table_matches_config() -> None:
    text = README.read_text()
    table = text.split("<!-- config-table:start -->\n", 1)[1].split("<!-- config-table:end -->")[0]
    expected = ["| variable | default | meaning |", "|---|---|---|"] + [
        f"| `{name}` | `{default}` | {help} |" for name, default, help in Config.describe()
    ]
    assert table.splitlines() == expected


def test_config_from_env_and_overrides() -> None:
    config = Config.from_env(
        {"TAPZONE_PORT": "9000", "TAPZONE_ACCESS_LOG": "yes", "TAPZONE_DB": "/x.db"},
        port=9100,
        db=None,
    )
    assert (config.port, config.access_log, config.db) == (9100, True, "/x.db")
