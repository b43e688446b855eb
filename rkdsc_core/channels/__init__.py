"""Differentiable channels, CSI, power normalisation and the one SNR convention (DESIGN.md §3)."""
