"""The README stays true: its test command is the one CI runs, and every setting is documented."""

from __future__ import annotations

import re
from pathlib import Path

from leaf_mongo.settings import LeafMongoSettings, env_name

ROOT = Path(__file__).resolve().parent.parent


def _bash_blocks(text: str) -> list[str]:
    return re.findall(r"```bash\n(.*?)```", text, flags=re.S)


def test_ci_runs_the_readme_test_command() -> None:
    readme = (ROOT / "README.md").read_text()
    blocks = _bash_blocks(readme)
    main_job, test_cmd = blocks[0].strip(), blocks[1].strip()
    assert main_job.endswith("leaf-mongo ingest ./docs") and "docker" not in main_job  # runs with no server
    assert "torch==2.13.0" in main_job and "torch==2.13.0" in test_cmd and test_cmd.endswith("pytest")
    assert test_cmd in (ROOT / ".ci" / "run").read_text().splitlines()
    assert (ROOT / "docs").is_dir()


def test_every_setting_is_documented() -> None:
    readme = (ROOT / "README.md").read_text()
    missing = [env_name(f) for f in LeafMongoSettings.model_fields if env_name(f) not in readme]
    assert missing == []
