"""Session set-up: the default data directory (SQLite archive, previews) is a throw-away folder, so no test writes
to ~/.local/share/skyqa even when it runs with default settings. Set before skyqa.service.config is imported;
tests that start commands with the SKYQA_* variables removed keep this one."""

from __future__ import annotations

import os
import tempfile

os.environ["SKYQA_DATA_DIR"] = tempfile.mkdtemp(prefix="skyqa-test-data-")
