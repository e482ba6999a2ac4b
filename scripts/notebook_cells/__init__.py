"""The cells of the notebooks in notebooks/, one module a notebook
(scripts/build_notebooks.py writes and runs them)."""
