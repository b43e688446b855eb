"""PHY framing: golden vectors (bit-exact header, burst to float32 precision), header code and CRC,
layout, RRC pulse, PAPR limit and the multipath-tap normalisation."""

import binascii
import json
from pathlib import Path

import numpy as np
import pytest

from rkdsc_core.phy import (
    HEADER_CHIPS,
    FrameConfig,
    FrameModulator,
    Header,
    decode_header,
    encode_header,
    frame_symbols,
    header_bits,
    parse_bits,
    preamble_symbols,
    rrc_taps,
    shape,
    zadoff_chu,
)
from rkdsc_core.phy.header import NO_LABEL, decode_chips, hadamard32, scrambler
from rkdsc_core.phy.preamble import detection_template
from rkdsc_core.phy.pulse import normalize_taps

DATA = Path(__file__).parent / "data"


@pytest.fixture(scope="module")
def golden() -> dict:
    return json.loads((DATA / "phy_golden.json").read_text())


def golden_inputs(golden: dict) -> tuple[FrameConfig, Header, np.ndarray]:
    cfg = FrameConfig(**golden["frame_config"])
    header = Header(**golden["header"])
    payload = (np.array(golden["payload_re"]) + 1j * np.array(golden["payload_im"])).astype(
        np.complex64
    )
    return cfg, header, payload


def test_golden_header_bits_and_chips_are_bit_exact(golden):
    _, header, _ = golden_inputs(golden)
    assert "".join(map(str, header_bits(header))) == golden["header_bits"]
    chips = "".join("+" if c > 0 else "-" for c in encode_header(header))
    assert chips == golden["header_chips"]


def test_golden_burst(golden):
    cfg, header, payload = golden_inputs(golden)
    burst = FrameModulator(cfg).modulate(header, payload)
    ref = np.load(DATA / golden["burst_file"])
    assert burst.samples.dtype == np.complex64 and burst.samples.shape == ref.shape
    assert burst.clipped == golden["burst_clipped"]
    np.testing.assert_allclose(burst.samples, ref, rtol=0, atol=2e-6)


def test_crc_is_ccitt_false():
    # the catalogue check value of CRC-16/CCITT-FALSE
    assert binascii.crc_hqx(b"123456789", 0xFFFF) == 0x29B1


def test_header_fields_round_trip_and_crc_catches_flips():
    h = Header(rate=4095, frame_index=65535, image_index=(1 << 24) - 1, bundle_id=1, label=0)
    bits = header_bits(h)
    assert bits.shape == (96,) and parse_bits(bits) == h
    for i in range(96):  # every single-bit error is detected
        bad = bits.copy()
        bad[i] ^= 1
        assert parse_bits(bad) is None


def test_header_wrap_and_limits():
    h = Header.wrap(16, 70000, (1 << 24) + 5, 0x1FFFF, None)
    assert (h.frame_index, h.image_index, h.bundle_id, h.label) == (
        70000 - 65536,
        5,
        0xFFFF,
        NO_LABEL,
    )
    with pytest.raises(ValueError, match="rate"):
        Header(rate=0)
    with pytest.raises(ValueError, match="label"):
        Header(rate=4, label=256)


def test_hadamard_and_scrambler():
    h = hadamard32()
    np.testing.assert_array_equal(h @ h.T, 32 * np.eye(32))
    s = scrambler()
    assert s.shape == (HEADER_CHIPS,) and set(np.unique(s)) == {-1.0, 1.0}
    # PN9 is balanced over a period; the first 512 chips stay within a few of zero mean
    assert abs(s.sum()) <= 16


def test_header_code_corrects_up_to_seven_chip_errors_per_word():
    rng = np.random.default_rng(3)
    h = Header(rate=16, frame_index=9, image_index=77, bundle_id=5, label=3)
    chips = encode_header(h)
    for _ in range(20):
        soft = chips.copy()
        for w in range(16):  # flip 7 random chips of every 32-chip word
            soft[w * 32 + rng.choice(32, 7, replace=False)] *= -1
        assert decode_header(soft) == h
    assert abs(chips.mean()) < 0.1  # scrambled: no DC


def test_soft_decoding_at_zero_db():
    """BPSK chips at Es/N0 = 0 dB: the RM(1,5) code keeps the header error rate below 1 %."""
    rng = np.random.default_rng(4)
    h = Header(rate=8, frame_index=1, image_index=2, bundle_id=3, label=4)
    chips = encode_header(h)
    noise = rng.normal(0.0, np.sqrt(0.5), size=(400, HEADER_CHIPS))  # real part of CN(0, 1)
    ok = sum(parse_bits(decode_chips(chips + n)) == h for n in noise)
    assert ok >= 396


def test_layout_sections_and_frame_length():
    cfg = FrameConfig()
    hl = cfg.header_layout
    assert len(hl.data) == HEADER_CHIPS and hl.length == HEADER_CHIPS + len(hl.pilots)
    assert np.all(np.diff(hl.pilots) <= cfg.pilot_spacing)  # a pilot at least every spacing symbols
    for k in (1, 4, 16, 64, 300):
        pl = cfg.payload_layout(k)
        assert len(pl.data) == k
        assert np.array_equal(np.sort(np.concatenate([pl.data, pl.pilots])), np.arange(pl.length))
        assert np.allclose(np.abs(pl.pilot_values), 1.0)
    sym = frame_symbols(cfg, Header(rate=16), np.ones(16))
    assert len(sym) == cfg.frame_symbols(16) == 128 + hl.length + cfg.payload_layout(16).length
    assert cfg.burst_samples(16) == 2 * cfg.guard + len(sym) * cfg.sps + cfg.rrc_taps - 1
    with pytest.raises(ValueError, match="K=16"):
        frame_symbols(cfg, Header(rate=16), np.ones(15))


def test_preamble_is_cazac_with_negated_last_rep():
    zc = zadoff_chu(32)
    np.testing.assert_allclose(np.abs(zc), 1.0)
    circ = [abs(np.vdot(zc, np.roll(zc, s))) for s in range(1, 32)]
    assert max(circ) < 1e-9  # ideal periodic autocorrelation
    pre = preamble_symbols(32, 4)
    np.testing.assert_allclose(pre[96:], -zc)
    tmpl = detection_template(32, 4, 4)
    assert len(tmpl) == 63 * 4 + 1 and np.allclose(tmpl[::4], pre[:64])


def test_rrc_is_unit_energy_and_nyquist_through_the_matched_filter():
    for sps, beta in ((2, 0.5), (4, 0.35), (8, 0.2)):
        g = rrc_taps(sps, beta, 12)
        assert len(g) == 12 * sps + 1
        assert np.sum(g * g) == pytest.approx(1.0, abs=1e-12)
        rc = np.convolve(g, g)
        mid = len(g) - 1
        isi = rc[mid + sps :: sps]
        assert rc[mid] == pytest.approx(1.0, abs=1e-12)
        assert np.max(np.abs(isi)) < 5e-3  # truncated RRC: near-zero crossings at k·T


def test_papr_limit_and_average_power():
    cfg = FrameConfig()
    mod = FrameModulator(cfg)
    rng = np.random.default_rng(5)
    powers, clipped = [], 0
    for i in range(30):
        p = (rng.normal(size=64) + 1j * rng.normal(size=64)) / np.sqrt(2)
        b = mod.modulate(Header(rate=64, frame_index=i), p / np.sqrt(np.mean(np.abs(p) ** 2)))
        assert np.max(np.abs(b.samples)) <= 1.0 + 1e-7
        x = b.samples[cfg.guard : len(b.samples) - cfg.guard]
        powers.append(np.mean(np.abs(x) ** 2))
        clipped += b.clipped
    # average sample power a²/sps = papr_db below full scale
    assert 10 * np.log10(np.mean(powers)) == pytest.approx(-cfg.papr_db, abs=0.3)
    assert clipped < 30  # Gaussian-like payloads: clipping is rare at 9 dB headroom
    hot = mod.modulate(Header(rate=4), np.full(4, 6.0 + 0j))  # a payload far over full scale
    assert hot.clipped > 0 and np.max(np.abs(hot.samples)) <= 1.0 + 1e-7


def test_normalize_taps_keeps_symbol_energy():
    cfg = FrameConfig()
    g = rrc_taps(cfg.sps, cfg.rolloff, cfg.span)
    h = normalize_taps(np.array([1.0, 0.5j, -0.3]), cfg.sps, cfg.rolloff, cfg.span)
    rng = np.random.default_rng(6)
    sym = (rng.normal(size=20000) + 1j * rng.normal(size=20000)) / np.sqrt(2)
    tx = shape(sym, g, cfg.sps)
    rx = np.convolve(tx, h)
    assert np.mean(np.abs(rx) ** 2) / np.mean(np.abs(tx) ** 2) == pytest.approx(1.0, rel=0.02)
    with pytest.raises(ValueError):
        normalize_taps(np.zeros(3), cfg.sps, cfg.rolloff, cfg.span)


def test_config_validation_names_the_key():
    with pytest.raises(ValueError, match="sps"):
        FrameConfig(sps=3)
    with pytest.raises(ValueError, match="preamble_reps"):
        FrameConfig(preamble_reps=1)
