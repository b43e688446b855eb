"""`rkdsc_gr.radios`: one gain rule per driver, shared by `rkdsc tx` / `rkdsc rx` and rf_link."""

from __future__ import annotations

import pytest

from rkdsc_gr.radios import NoRadio, hackrf_gains, set_gain


class _Dev:
    def __init__(self) -> None:
        self.calls: list[tuple] = []

    def set_gain(self, *args) -> None:
        self.calls.append(args)


@pytest.mark.parametrize(
    ("gain", "tx", "want"),
    [
        (30.0, False, {"AMP": 0.0, "LNA": 24.0, "VGA": 6.0}),
        (7.0, False, {"AMP": 0.0, "LNA": 0.0, "VGA": 6.0}),
        (200.0, False, {"AMP": 0.0, "LNA": 40.0, "VGA": 62.0}),
        (-5.0, False, {"AMP": 0.0, "LNA": 0.0, "VGA": 0.0}),
        (30.0, True, {"AMP": 0.0, "VGA": 30.0}),
        (60.0, True, {"AMP": 0.0, "VGA": 47.0}),
    ],
)
def test_hackrf_gain_split(gain, tx, want):
    assert hackrf_gains(gain, tx) == want


def test_set_gain_per_driver():
    hackrf, lime, usrp = _Dev(), _Dev(), _Dev()
    set_gain(hackrf, "soapy", "", 30.0, tx=False)  # "" is the first HackRF
    assert hackrf.calls == [(0, "AMP", 0.0), (0, "LNA", 24.0), (0, "VGA", 6.0)]
    set_gain(lime, "soapy", "driver=lime", 30.0, tx=False)
    assert lime.calls == [(0, 30.0)]
    set_gain(usrp, "uhd", "", 30.0, tx=True)
    assert usrp.calls == [(30.0, 0)]


def test_no_radio_is_a_runtime_error_and_a_one_line_rkdsc_error():
    from rkdsc_core.errors import RkdscError

    assert issubclass(NoRadio, RuntimeError) and issubclass(NoRadio, RkdscError)
