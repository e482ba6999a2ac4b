"""The defaults study (scripts/defaults_study.py), one module a concern."""
