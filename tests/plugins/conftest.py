"""Fixtures shared by the plugin tests: one tiny finished sweep (see fixtures_pixel_sweep)."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def pixel_sweep(tmp_path_factory):
    """(sweep, folder) of the finished shared sweep, run on one torch thread (tiny convolutions run faster on one
    thread than on two contended ones on the shared test machine)."""
    import torch

    import brain_workbench as wb
    from brain_workbench.sweep import Sweep
    from brain_workbench.sweep.config import config_from_dict
    from fixtures_encoders import ColourEncoder, PixelEncoder
    from fixtures_pixel_sweep import pixel_config

    wb.register("pixel-test", PixelEncoder, kind="encoder", replace=True)
    wb.register("colour-test", ColourEncoder, kind="encoder", replace=True)
    tmp = tmp_path_factory.mktemp("pixel-sweep")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        sweep = Sweep(config_from_dict(pixel_config(tmp)))
        sweep.run()
    finally:
        torch.set_num_threads(threads)
    return sweep, tmp
