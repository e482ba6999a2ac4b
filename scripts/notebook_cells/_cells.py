"""What every notebook shares: its first cell and the cell makers."""

import nbformat

# First cell of every notebook: quiet, deterministic, small figures.
SETUP = """\
%matplotlib inline
import warnings
warnings.filterwarnings("ignore", message="IProgress not found")  # tqdm, no widgets
import torch
import matplotlib.pyplot as plt
torch.manual_seed(0)
plt.rcParams["figure.dpi"] = 80"""


def md(text: str):
    return nbformat.v4.new_markdown_cell(text.strip("\n"))


def code(text: str):
    return nbformat.v4.new_code_cell(text.strip("\n"))
