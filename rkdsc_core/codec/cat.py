"""The channel-aware transformer (CAT) codec of RKD-SC (PAPER.md §5, DESIGN.md §3).

Per-sample: a sample's symbols never depend on its batch-mates (no batch norm, no cross-batch
attention). The encoder splits the semantic feature into tokens, adds an SNR embedding (or a
learned "SNR unknown" embedding when the transmitter has no feedback), and emits K_max complex
symbols; any prefix of k symbols is re-normalised to unit average power and decodes alone
(nested rates, learned by random truncation). The decoder reads the equalised symbols with their
per-symbol effective SNR, masks the symbols that were not sent, and reconstructs the feature.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import torch
from torch import nn

from rkdsc_core.channels import normalize_power
from rkdsc_core.errors import check_choice

SNR_SCALE_DB = 20.0  # SNR inputs are fed as snr_db / 20, clamped to ±2 (−40…40 dB)
ENC_OUTPUTS = ("dense", "token")


@dataclass(frozen=True)
class CATConfig:
    """Shape of a CAT codec; plain data, stored in the bundle manifest."""

    feature_dim: int
    k_max: int = 64
    rates: tuple[int, ...] = (4, 8, 16, 32, 64)
    tokens: int = 16
    d_model: int = 64
    heads: int = 4
    enc_layers: int = 2
    dec_layers: int = 2
    ff_mult: int = 2
    dropout: float = 0.0
    # The encoder runs at the transmitter, where size counts (issue 19): it may be narrower than
    # the decoder (None: d_model), and "token" gives each token its own small output map (token t
    # emits symbols t, t + tokens, t + 2·tokens, …) instead of one dense map of all tokens.
    enc_d_model: int | None = None
    enc_ff_mult: int | None = None
    enc_out: str = "dense"

    def __post_init__(self) -> None:
        if self.feature_dim % self.tokens:
            raise ValueError(
                f"feature_dim ({self.feature_dim}) must divide by tokens ({self.tokens})"
            )
        check_choice("enc_out", self.enc_out, ENC_OUTPUTS)
        if self.enc_out == "token" and self.k_max % self.tokens:
            raise ValueError(
                f"enc_out 'token' needs k_max ({self.k_max}) to divide by tokens ({self.tokens})"
            )
        if self.encoder_width % self.heads:
            raise ValueError(
                f"the encoder width ({self.encoder_width}) must divide by heads ({self.heads})"
            )
        if not self.rates or max(self.rates) > self.k_max or min(self.rates) < 1:
            raise ValueError(f"rates {self.rates} must lie in 1..k_max={self.k_max}")
        if self.d_model % self.heads:
            raise ValueError(f"d_model ({self.d_model}) must divide by heads ({self.heads})")

    @property
    def encoder_width(self) -> int:
        return self.enc_d_model or self.d_model

    def to_dict(self) -> dict:
        d = asdict(self)
        d["rates"] = list(self.rates)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> CATConfig:
        d = dict(d)
        d["rates"] = tuple(d.get("rates", cls.rates))
        return cls(**d)


def snr_input(snr_db: torch.Tensor) -> torch.Tensor:
    """SNR in dB (any shape) → the network input snr_db / 20, clamped to ±2."""
    return (snr_db / SNR_SCALE_DB).clamp(-2.0, 2.0)


def _transformer(cfg: CATConfig, layers: int, width: int, ff_mult: int) -> nn.TransformerEncoder:
    layer = nn.TransformerEncoderLayer(
        width,
        cfg.heads,
        ff_mult * width,
        cfg.dropout,
        batch_first=True,
        norm_first=True,
    )
    return nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)


class SNREmbedding(nn.Module):
    """snr_db float [B] (NaN = unknown) → float [B, d_model]."""

    def __init__(self, d_model: int) -> None:
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(1, d_model), nn.GELU(), nn.Linear(d_model, d_model))
        self.unknown = nn.Parameter(torch.zeros(d_model))

    def forward(self, snr_db: torch.Tensor) -> torch.Tensor:
        known = torch.isfinite(snr_db)
        emb = self.mlp(snr_input(torch.nan_to_num(snr_db)).unsqueeze(-1))
        return torch.where(known.unsqueeze(-1), emb, self.unknown.expand_as(emb))


class CATEncoder(nn.Module):
    """feature float [B, D], snr_db float [B] (NaN: unknown) → raw symbols complex64 [B, K_max]."""

    def __init__(self, cfg: CATConfig) -> None:
        super().__init__()
        self.cfg = cfg
        chunk = cfg.feature_dim // cfg.tokens
        width = cfg.encoder_width
        self.inp = nn.Linear(chunk, width)
        self.pos = nn.Parameter(torch.randn(cfg.tokens, width) * 0.02)
        self.snr = SNREmbedding(width)
        self.body = _transformer(cfg, cfg.enc_layers, width, cfg.enc_ff_mult or cfg.ff_mult)
        self.norm = nn.LayerNorm(width)
        if cfg.enc_out == "dense":
            self.out = nn.Linear(cfg.tokens * width, 2 * cfg.k_max)
        else:  # one [width → 2·k_max/tokens] map per token
            per = 2 * cfg.k_max // cfg.tokens
            self.out_weight = nn.Parameter(torch.randn(cfg.tokens, width, per) / width**0.5)
            self.out_bias = nn.Parameter(torch.zeros(cfg.tokens, per))

    def forward(self, feature: torch.Tensor, snr_db: torch.Tensor) -> torch.Tensor:
        b, t = feature.shape[0], self.cfg.tokens
        tok = self.inp(feature.view(b, t, -1)) + self.pos
        tok = self.norm(self.body(tok + self.snr(snr_db).unsqueeze(1)))
        if self.cfg.enc_out == "dense":
            re_im = self.out(tok.flatten(1)).view(b, self.cfg.k_max, 2)
        else:  # [B, T, 2·k_max/T] → symbol j·T + t of token t, so short prefixes span all tokens
            per_tok = torch.einsum("btw,twp->btp", tok, self.out_weight) + self.out_bias
            re_im = per_tok.view(b, t, -1, 2).transpose(1, 2).reshape(b, self.cfg.k_max, 2)
        return torch.complex(re_im[..., 0], re_im[..., 1])


class CATDecoder(nn.Module):
    """Equalised symbols complex [B, K_max] (zeros past k), per-symbol SNR dB [B, K_max] and a
    mask bool [B, K_max] (True = received) → reconstructed feature float [B, D].

    A narrower width W <= K_max (symbols 1..W at positions 0..W-1) gives the same result as
    zero-padding to K_max with the padding masked: masked keys take no part in attention.
    """

    def __init__(self, cfg: CATConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.sym = nn.Linear(3, cfg.d_model)
        self.pos = nn.Parameter(torch.randn(cfg.k_max, cfg.d_model) * 0.02)
        self.queries = nn.Parameter(torch.randn(cfg.tokens, cfg.d_model) * 0.02)
        self.snr = SNREmbedding(cfg.d_model)
        self.body = _transformer(cfg, cfg.dec_layers, cfg.d_model, cfg.ff_mult)
        self.norm = nn.LayerNorm(cfg.d_model)
        self.out = nn.Linear(cfg.d_model, cfg.feature_dim // cfg.tokens)

    def forward(self, y: torch.Tensor, snr_db: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        b, w = y.shape
        snr_in = snr_input(snr_db)
        sym = self.sym(torch.stack([y.real, y.imag, snr_in], -1)) + self.pos[:w]
        mean_snr = (snr_db * mask).sum(1) / mask.sum(1).clamp(min=1)
        q = self.queries.expand(b, -1, -1) + self.snr(mean_snr).unsqueeze(1)
        pad = torch.cat([mask.new_zeros(b, self.cfg.tokens), ~mask], 1)
        out = self.body(torch.cat([q, sym], 1), src_key_padding_mask=pad)
        return self.out(self.norm(out[:, : self.cfg.tokens])).flatten(1)


@dataclass
class CATOutput:
    """One pass through encoder → channel → decoder (for losses and diagnostics)."""

    symbols: torch.Tensor  # complex64 [B, K_max], first k unit power, rest zero
    mask: torch.Tensor  # bool [B, K_max]
    feature_hat: torch.Tensor  # float [B, D]
    extras: dict = field(default_factory=dict)


class CATCodec(nn.Module):
    """Encoder + decoder with the variable-length (nested) rate logic between them."""

    def __init__(self, cfg: CATConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.encoder = CATEncoder(cfg)
        self.decoder = CATDecoder(cfg)

    @staticmethod
    def rate_mask(k: torch.Tensor, k_max: int) -> torch.Tensor:
        """k int [B] → bool [B, k_max], True for the first k[b] positions."""
        return torch.arange(k_max, device=k.device).unsqueeze(0) < k.unsqueeze(1)

    def encode(self, feature: torch.Tensor, k: int | torch.Tensor, snr_db=None) -> torch.Tensor:
        """feature [B, D] → complex64 [B, K_max]: the first k[b] symbols at unit average power,
        zeros after. `k` an int or int [B]; `snr_db` None (unknown), a float, or float [B]."""
        b = feature.shape[0]
        dev = feature.device
        snr = torch.full((b,), float("nan"), device=dev) if snr_db is None else snr_db
        snr = torch.as_tensor(snr, dtype=torch.float32, device=dev).expand(b)
        kk = torch.as_tensor(k, device=dev).expand(b)
        if int(kk.min()) < 1 or int(kk.max()) > self.cfg.k_max:
            raise ValueError(f"k must lie in 1..{self.cfg.k_max}, got {kk.tolist()[:4]}")
        mask = self.rate_mask(kk, self.cfg.k_max)
        raw = self.encoder(feature, snr) * mask
        return normalize_power(raw, mask=mask)

    def decode(self, y: torch.Tensor, snr_db: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """See CATDecoder; `snr_db` float [B] or [B, K_max] (effective, per symbol)."""
        snr = snr_db if snr_db.ndim == 2 else snr_db.unsqueeze(1).expand_as(mask)
        return self.decoder(y * mask, snr.float() * mask, mask)

    def decode_received(self, y: torch.Tensor, snr_db: torch.Tensor) -> torch.Tensor:
        """The first k symbols of every image, all received: `y` complex [B, k], `snr_db` float
        [B] or [B, k] → feature [B, D]. Runs the decoder at width k, which gives what padding to
        K_max with the rest masked gives (masked keys take no part in attention), cheaper."""
        mask = torch.ones(y.shape, dtype=torch.bool, device=y.device)
        return self.decode(y, snr_db, mask)
