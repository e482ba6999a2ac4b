"""Gradient maps side by side and model-randomisation sanity checks (Adebayo et al. 2018)."""
