"""The GNU Radio side's channel lists agree with rkdsc_core.channels.CHANNELS, the registry."""

from pathlib import Path

import pytest
import yaml

from rkdsc_core.channels import list_channels

pytestmark = pytest.mark.gnuradio

GRC_DIR = Path(__file__).resolve().parents[2] / "gr-rkdsc" / "grc"


def _options(block: str, param: str) -> tuple:
    spec = yaml.safe_load((GRC_DIR / f"rkdsc_{block}.block.yml").read_text())
    return tuple(next(p for p in spec["parameters"] if p["id"] == param)["options"])


def test_symbol_channel_implements_every_registered_channel():
    from rkdsc_gr.symbol_channel import CHANNELS

    assert CHANNELS == list_channels() == _options("symbol_channel", "channel")


def test_waveform_channels_map_registered_names_to_ota_channel_fading():
    from rkdsc_gr.ota_channel import FADING
    from rkdsc_gr.ota_loopback import WAVEFORM_CHANNELS

    assert set(WAVEFORM_CHANNELS) <= set(list_channels())
    assert set(WAVEFORM_CHANNELS.values()) <= set(FADING)
    assert FADING == _options("ota_channel", "fading")
