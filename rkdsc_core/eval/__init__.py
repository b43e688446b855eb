"""Accuracy-vs-SNR sweeps, baselines, plots and JSON reports."""
