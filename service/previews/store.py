"""Where previews live: one file per exposure under `previews.location` (a directory beside the archive).

Interfaces:
- `PreviewStore(location)`; `.put(exposure_id, data, fmt)` writes `<id>.<webp|png>` atomically (write + rename,
  so a reader never sees half an image; a re-processed exposure replaces its preview);
  `.get(exposure_id) -> Preview | None` (None when absent); `.path(exposure_id)`.
- Ids go through `skyqa.service.pipeline.ids`: a hostile id (`../x`, NUL, 2 kB) raises `InvalidId` (a ValueError)
  before any path is built.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from skyqa.service.pipeline.ids import normalise_exposure_id, safe_join

MEDIA_TYPES = {"webp": "image/webp", "png": "image/png"}


@dataclass(frozen=True)
class Preview:
    data: bytes
    media_type: str


class PreviewStore:
    def __init__(self, location: Path) -> None:
        self.location = Path(location)

    def path(self, exposure_id: str) -> Path | None:
        """The stored preview's file, None when there is none."""
        name = normalise_exposure_id(exposure_id)
        for ext in MEDIA_TYPES:
            # os.path on strings: the night page asks for hundreds of rows, and pathlib costs ~25 us a look-up
            if os.path.isfile(os.path.join(self.location, f"{name}.{ext}")):
                return safe_join(self.location, f"{name}.{ext}")
        return None

    def get(self, exposure_id: str) -> Preview | None:
        path = self.path(exposure_id)
        if path is None:
            return None
        try:
            return Preview(path.read_bytes(), MEDIA_TYPES[path.suffix[1:]])
        except FileNotFoundError:  # replaced between the look-up and the read
            return None

    def put(self, exposure_id: str, data: bytes, fmt: str) -> Path:
        name = normalise_exposure_id(exposure_id)
        target = safe_join(self.location, f"{name}.{fmt}")
        self.location.mkdir(parents=True, exist_ok=True)
        handle, temp = tempfile.mkstemp(prefix=".preview-", dir=self.location)
        try:
            os.fchmod(handle, 0o644)  # mkstemp's 0600 would hide it from a web app running as another user
            with os.fdopen(handle, "wb") as out:
                out.write(data)
            os.replace(temp, target)
        except BaseException:
            Path(temp).unlink(missing_ok=True)
            raise
        for other in MEDIA_TYPES.keys() - {fmt}:  # a format change leaves one preview per exposure
            safe_join(self.location, f"{name}.{other}").unlink(missing_ok=True)
        return target
