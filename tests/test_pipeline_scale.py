"""A 60,000-item generated shop (benchmarks/power_law_log.py) goes through `foryou pipeline` with defaults
under a 16 GiB address-space limit (each of its processes: the baselines fit in a second one, baseline_fits.py):
the dense EASE alone would need 40 GiB, so the defaults must pick the sparse one (and say so in bundle.json). Only the epochs are capped (EPOCHS): every model choice stays the default's,
and each of the pipeline's three two-tower fits costs minutes per epoch at this size on 2 cores."""

from __future__ import annotations

import json
import resource
import subprocess
import sys
from pathlib import Path

import pytest
from benchmarks.power_law_log import LogSize, write_log

ADDRESS_SPACE = 16 * 2**30
SHOP = LogSize(events=100_000, items=60_000, users=20_000)
EPOCHS = 3


def _limit_address_space() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (ADDRESS_SPACE, ADDRESS_SPACE))


@pytest.mark.slow
def test_sixty_thousand_items_through_the_pipeline_under_16_gib(tmp_path: Path) -> None:
    config = write_log(tmp_path / "log", SHOP)["config"]
    output = tmp_path / "run"
    foryou = Path(sys.executable).with_name("foryou")
    finished = subprocess.run([str(foryou), "pipeline", config, "-q", "--set", f"output_dir={output}",
                               "--set", f"train.epochs={EPOCHS}"],
                              capture_output=True, text=True, preexec_fn=_limit_address_space, timeout=3 * 3600,
                              check=False)
    assert finished.returncode == 0, finished.stderr[-3000:]
    manifest = json.loads((output / "bundle" / "bundle.json").read_text())
    assert manifest["data"]["counts"]["items"] == SHOP.items  # every item has an event: none filtered out
    assert manifest["served_params"]["ease"]["engine"] == "sparse"
    assert "stage bundle:" in finished.stderr  # one line per stage, the last one included
