"""The line `rkdsc loopback` prints per point: symbol-level and waveform points, with and without
rate adaptation (a fixed-K waveform point has channel uses but no requests)."""

from rkdsc.cli import loopback_line

REP = {"channel": "awgn", "rate": 16}


def test_waveform_points_print_symbols_and_on_air_uses():
    fixed = {"snr_db": 0.0, "accuracy": 0.9, "frames_detected": 2, "frames_sent": 2}
    fixed |= {"mean_symbols": 16.0, "mean_channel_uses": 2715.0}
    line = loopback_line(REP, fixed)
    assert "16.00 symbols/image (2715 on air)" in line and "requests" not in line
    ir = fixed | {"mean_symbols": 9.5, "requests_per_image": 1.25, "k_histogram": {"4": 2}}
    assert "9.50 symbols/image (2715 on air)  1.25 requests/image" in loopback_line(REP, ir)


def test_symbol_points_print_symbols_and_requests():
    p = {"snr_db": 10.0, "accuracy": 0.9, "frames_detected": 2, "frames_sent": 2}
    assert "symbols" not in loopback_line(REP, p)
    p |= {"mean_channel_uses": 4.25, "requests_per_image": 0.1, "k_histogram": {"4": 2}}
    assert "4.25 symbols/image  0.10 requests/image" in loopback_line(REP, p)
