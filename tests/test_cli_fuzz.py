"""CLI fuzz test (issue 12): hostile files and argument values.

The cases are generated from a library of hostile files (truncated images,
images in every PIL mode, 16-bit and float images, decompression bombs and
huge declared sizes, malicious pickles and broken checkpoints as
``--weights``, TorchScript models, symlinks, folders where files are
expected) and of hostile option values (NaN/inf numbers, out-of-range
integers, unknown names, ``--device meta``, huge ``--input-size``, names
with ``../``, line breaks or a leading ``-``, existing output folders with
foreign files, read-only folders), for every command. Every case must end

* with exit code 2 and exactly one line on stderr (no traceback, no
  warning before it), or
* with success (exit code 0),

and the user's files must be unchanged (only the ``--out`` folder of a
successful run is new or replaced) with no temporary folder left. SIGINT,
SIGTERM and SIGHUP arriving mid-write end with 130 / 128 + signal, one line,
nothing left. The counts are printed by the last test (``-s`` to see them)
and recorded in docs/reliability.md.
"""

from __future__ import annotations

import collections
import hashlib
import io
import math
import os
import pickle
import shutil
import signal
import struct
import warnings
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from captum_crigrad.cli import main
from captum_crigrad.io.default import load_default_images
from captum_crigrad.io.models import SmallCNN, resnet20

OUTCOMES: collections.Counter = collections.Counter()


# -- the library of hostile files ------------------------------------------------


class _Evil:
    """Unpickling it would run a shell command (it must never be unpickled)."""

    def __init__(self, flag):
        self.flag = flag

    def __reduce__(self):
        return (os.system, (f"touch {self.flag}",))


MODES = (
    "1",
    "L",
    "LA",
    "P",
    "PA",
    "RGB",
    "RGBA",
    "RGBX",
    "CMYK",
    "YCbCr",
    "LAB",
    "HSV",
    "I",
    "F",
    "I;16",
    "I;16B",
)
FORMATS = ("png", "tiff", "bmp", "gif", "webp", "ppm", "jpeg")


def _writable(fmt: str, mode: str) -> bool:
    """Whether PIL writes (and reads back) a ``mode`` image as ``fmt``."""
    buf = io.BytesIO()
    try:
        Image.new(mode, (4, 3)).save(buf, "JPEG" if fmt == "jpeg" else fmt.upper())
        buf.seek(0)
        Image.open(buf).load()
    except Exception:
        return False
    return True


MODE_FILES = [
    f"mode_{mode.replace(';', '')}.{fmt}"
    for fmt in FORMATS
    for mode in MODES
    if _writable(fmt, mode)
]


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    body = kind + data
    return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))


def _build_library(root: Path) -> list[str]:
    """Hostile (and a few good) files in ``root``; returns the image names."""
    raw, _ = load_default_images(normalized=False)
    digit = (raw[0, 0] * 255).round().byte().numpy()
    Image.fromarray(digit).save(root / "ok.png")
    Image.fromarray(np.stack([digit] * 3, -1)).save(root / "ok_rgb.png")
    big = Image.fromarray(np.stack([digit] * 3, -1)).resize((256, 256))
    buf = io.BytesIO()
    big.save(buf, "PNG")
    (root / "trunc.png").write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    buf = io.BytesIO()
    big.save(buf, "JPEG")
    (root / "trunc.jpg").write_bytes(buf.getvalue()[: len(buf.getvalue()) // 3])
    (root / "empty.png").write_bytes(b"")
    (root / "text.png").write_text("not an image\n")
    (root / "folder.png").mkdir()
    names = [
        "ok.png",
        "ok_rgb.png",
        "trunc.png",
        "trunc.jpg",
        "empty.png",
        "text.png",
        "folder.png",
    ]
    # every mode PIL can write, in every format that takes it
    g = np.random.default_rng(0)
    for fmt in FORMATS:
        for mode in MODES:
            name = f"mode_{mode.replace(';', '')}.{fmt}"
            if name not in MODE_FILES:
                continue
            im = Image.new(mode, (24, 20))
            if mode in ("L", "RGB", "RGBA"):  # some content
                arr = np.asarray(im).copy()
                arr[...] = g.integers(0, 200, arr.shape, dtype=arr.dtype)
                im = Image.fromarray(arr)
            im.save(root / name)
            names.append(name)
    deep = (np.linspace(0, 65535, 28 * 28).reshape(28, 28)).astype(np.uint16)
    Image.fromarray(deep).save(root / "deep16.png")
    Image.fromarray(deep.astype(np.int32)).save(root / "int32_in_range.tif")
    Image.fromarray(np.array([[0, 70000], [-5, 3]], np.int32)).save(
        root / "int32_out_of_range.tif"
    )
    ramp = np.linspace(0, 1, 28 * 28, dtype=np.float32).reshape(28, 28)
    Image.fromarray(ramp).save(root / "float_ok.tif")
    Image.fromarray(ramp * 7 - 2).save(root / "float_out_of_range.tif")
    nan = ramp.copy()
    nan[3, 3] = np.nan
    Image.fromarray(nan).save(root / "float_nan.tif")
    frames = [Image.fromarray(digit), Image.fromarray(255 - digit)]
    frames[0].save(root / "anim.gif", save_all=True, append_images=frames[1:])
    Image.new("1", (14000, 14000)).save(root / "bomb.png", optimize=True)
    # a PNG header declaring 100000 x 100000 pixels over a few bytes of data
    head = b"\x89PNG\r\n\x1a\n" + _png_chunk(
        b"IHDR", struct.pack(">IIBBBBB", 100_000, 100_000, 8, 0, 0, 0, 0)
    )
    (root / "huge_header.png").write_bytes(
        head + _png_chunk(b"IDAT", zlib.compress(b"\0" * 64)) + _png_chunk(b"IEND", b"")
    )
    names += [
        "deep16.png",
        "int32_in_range.tif",
        "int32_out_of_range.tif",
        "float_ok.tif",
        "float_out_of_range.tif",
        "float_nan.tif",
        "anim.gif",
        "bomb.png",
        "huge_header.png",
    ]
    os.symlink("ok.png", root / "link.png")
    os.symlink("nowhere.png", root / "dangling.png")
    os.symlink("loop.png", root / "loop.png")
    names += ["link.png", "dangling.png", "loop.png"]
    # checkpoints
    flag = root.parent / "PWNED"
    for protocol in (2, 4):
        with open(root / f"evil{protocol}.pth", "wb") as fh:
            pickle.dump({"w": _Evil(flag)}, fh, protocol=protocol)
    torch.save({"w": _Evil(flag)}, root / "evil_torch.pth")
    state = SmallCNN(in_channels=1).state_dict()
    torch.save(state, root / "smallcnn.pth")
    data = (root / "smallcnn.pth").read_bytes()
    (root / "trunc.pth").write_bytes(data[: len(data) // 2])
    (root / "empty.pth").write_bytes(b"")
    (root / "noise.pth").write_bytes(np.random.default_rng(1).bytes(3000))
    torch.save(resnet20().state_dict(), root / "resnet20.pth")
    torch.save({k: v.float() * math.nan for k, v in state.items()}, root / "nan.pth")
    torch.save({"epoch": 3, "lr": 0.1}, root / "not_tensors.pth")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.jit.save(
            torch.jit.script(SmallCNN(in_channels=1).eval()), root / "scripted.pt"
        )
    return names


@pytest.fixture(scope="module")
def library(tmp_path_factory):
    root = tmp_path_factory.mktemp("library")
    return root, _build_library(root)


# -- the cases --------------------------------------------------------------------


@dataclass
class Case:
    name: str
    argv: list[str]
    prepare: str | None = None  # how to prepare the sandbox (see _prepare)
    expect: str = "either"  # "error", "success" or "either"
    signal: int | None = None


FAST = {
    "saliency": ["--methods", "saliency"],
    "eval": [
        "--methods",
        "saliency",
        "--metrics",
        "deletion_auc",
        "--steps",
        "2",
        "--n-images",
        "1",
        "--workers",
        "0",
        "--bootstrap",
        "50",
    ],
    "sanity": [
        "--methods",
        "GradientExplanation",
        "--n-images",
        "1",
        "--granularity",
        "block",
    ],
    "demo": ["--model", "mnist", "--methods", "saliency", "--steps", "2", "--quiet"],
}

#: existing --out folders (see _prepare) and the outcome each must have
OUT_KINDS = (
    ("foreign", "error"),
    ("foreign_run_json", "error"),
    ("ours", "success"),
    ("ours_plus_file", "error"),
    ("file", "error"),
    ("link_to_folder", "success"),
    ("dangling_link", "success"),
    ("link_to_file", "error"),
    ("deep_new", "success"),
    ("read_only_parent", "either"),
    ("images_folder", "error"),
    ("cwd", "error"),
    ("legacy_ours", "error"),
    ("newline", "success"),
)

IMAGE_FILES = (
    [
        "ok.png",
        "ok_rgb.png",
        "trunc.png",
        "trunc.jpg",
        "empty.png",
        "text.png",
        "folder.png",
    ]
    + MODE_FILES
    + [
        "deep16.png",
        "int32_in_range.tif",
        "int32_out_of_range.tif",
        "float_ok.tif",
        "float_out_of_range.tif",
        "float_nan.tif",
        "anim.gif",
        "bomb.png",
        "huge_header.png",
        "link.png",
        "dangling.png",
        "loop.png",
    ]
)


def _cases() -> list[Case]:
    cases: list[Case] = []
    add = cases.append
    # every hostile image, grey and RGB models
    for name in IMAGE_FILES:
        add(Case(f"image-{name}", ["saliency", "{lib}/" + name, *FAST["saliency"]]))
    for name in ("ok_rgb.png", "deep16.png", "float_ok.tif", "mode_CMYK.jpeg"):
        add(
            Case(
                f"image-rgb-model-{name}",
                [
                    "saliency",
                    "{lib}/" + name,
                    "--model",
                    "{lib}/scripted.pt",
                    "--channels",
                    "3",
                    "--methods",
                    "saliency",
                ],
                expect="error",
            )
        )
    add(Case("image-folder-of-everything", ["eval", "{lib}", *FAST["eval"]]))
    # checkpoints and models
    for weights in (
        "evil2.pth",
        "evil4.pth",
        "evil_torch.pth",
        "trunc.pth",
        "empty.pth",
        "noise.pth",
        "resnet20.pth",
        "nan.pth",
        "not_tensors.pth",
        "missing.pth",
        "folder.png",
        "scripted.pt",
    ):
        add(
            Case(
                f"weights-{weights}",
                [
                    "saliency",
                    "{lib}/ok.png",
                    "--model",
                    "smallcnn",
                    "--weights",
                    "{lib}/" + weights,
                    *FAST["saliency"],
                ],
                expect="error",
            )
        )
    add(
        Case(
            "weights-valid",
            [
                "saliency",
                "{lib}/ok.png",
                "--model",
                "smallcnn",
                "--weights",
                "{lib}/smallcnn.pth",
                "--normalize",
                "none",
                *FAST["saliency"],
            ],
            expect="success",
        )
    )
    for model in (
        "{lib}/evil4.pth",
        "{lib}/folder.png",
        "{lib}/missing.pt",
        "resnet9000",
        "../../etc/passwd",
        "-",
    ):
        add(
            Case(
                f"model-{model}",
                ["saliency", "{lib}/ok.png", "--model", model, *FAST["saliency"]],
                expect="error",
            )
        )
    for method in (
        "saliency",
        "gradcam",
        "crigrad",
        "guidedbackprop",
        "expectedgradcam",
        "forgrad",
        "integratedgradients",
    ):
        add(
            Case(
                f"torchscript-{method}",
                [
                    "saliency",
                    "{lib}/ok.png",
                    "--model",
                    "{lib}/scripted.pt",
                    "--channels",
                    "1",
                    "--input-size",
                    "28",
                    "--methods",
                    method,
                ],
            )
        )
    add(
        Case(
            "torchscript-eval-crigrad",
            [
                "eval",
                "{lib}/ok.png",
                "--model",
                "{lib}/scripted.pt",
                "--channels",
                "1",
                "--input-size",
                "28",
                "--methods",
                "crigrad-saliency",
                "--metrics",
                "deletion_auc",
                "--steps",
                "2",
            ],
            expect="error",
        )
    )
    add(
        Case(
            "torchscript-sanity-gradcam",
            [
                "sanity",
                "{lib}/ok.png",
                "--model",
                "{lib}/scripted.pt",
                "--channels",
                "1",
                "--input-size",
                "28",
                "--methods",
                "GradCAM",
            ],
            expect="error",
        )
    )
    # odd names
    for name in (
        "../up.png",
        "-rf.png",
        "new\nline.png",
        "sp ace é.png",
        "=HYPERLINK(1).png",
        "@SUM(A1).png",
        "+1.png",
        "..png",
        " .png",
    ):
        add(
            Case(
                f"name-{name!r}",
                ["saliency", *FAST["saliency"], "--", name],
                prepare="name:" + name,
                expect="success",
            )
        )
    add(
        Case(
            "name-missing", ["saliency", "nope.png", *FAST["saliency"]], expect="error"
        )
    )
    # output folders: the staged folders of saliency/sanity/demo and eval's
    # resumable folder (evaluation.runner) are two code paths
    for command, kind, expect in [
        (command, kind, expect)
        for command in ("saliency", "eval")
        for kind, expect in OUT_KINDS
    ] + [
        ("eval", "eval_claims_ours", "error"),
        ("eval", "eval_unfinished", "error"),
    ]:
        add(
            Case(
                f"out-{kind}" if command == "saliency" else f"{command}-out-{kind}",
                [command, "{d}/imgs", *FAST[command]],
                prepare="out:" + kind,
                expect=expect,
            )
        )
    for out, expect in (
        ("", "error"),
        ("/proc/captum-crigrad-nope/out", "error"),
        ("-x", "success"),
    ):
        add(
            Case(
                f"out-{out!r}",
                ["saliency", "{lib}/ok.png", *FAST["saliency"], f"--out={out}"],
                expect=expect,
            )
        )
    # option values
    bad_values = {
        "--std": ["nan", "inf", "-inf", "1e309", "0", "-1", "1,2", "a", ""],
        "--mean": ["nan", "inf", "1,2,3,4", "x"],
        "--keep": ["nan", "inf", "0", "-1", "1.5", "abc"],
        "--stdev": ["nan", "-1", "inf"],
        "--n-steps": ["0", "-1", "x"],
        "--n-samples": ["0", "-1"],
        "--batch-size": ["0", "-1", "1000000"],
        "--n-images": ["0", "-5", "1000000"],
        "--device": ["meta", "cuda", "mps", "cpu:99", "nodevice", "", "cuda:-1"],
        "--input-size": ["0", "7", "-1", "1000000000", "4097", "9"],
        "--target": ["-1", "-11", "10", "abc", "1.5", "", "predicted"],
        "--layer": ["nope", "", "features.99"],
        "--methods": [
            "",
            ",",
            "nope",
            "saliency,saliency",
            "crigrad-nope",
            "forgrad-crigrad-saliency",
        ],
        "--seed": ["-1", str(2**70), "x"],
        "--format": ["xyz", "npy"],
        "--normalize": ["bad", "none"],
        "--num-classes": ["0", "-1", "3"],
        "--crigrad-layers": ["nope", ",", "features.0"],
        "--channels": ["2", "0", "3"],
        "--importance": ["bad"],
        "--granularity": ["channel", "bad"],
    }
    for option, values in bad_values.items():
        for value in values:
            extra = {
                "--stdev": ["--methods", "smoothgrad"],
                "--n-samples": ["--methods", "smoothgrad"],
                "--n-steps": ["--methods", "integratedgradients"],
                "--keep": ["--methods", "crigrad"],
                "--layer": ["--methods", "gradcam"],
                "--crigrad-layers": ["--methods", "crigrad"],
                "--importance": ["--methods", "crigrad"],
                "--granularity": ["--methods", "crigrad"],
            }.get(option, [])
            if option == "--methods":
                extra = []
            argv = [
                "saliency",
                "{lib}/ok.png",
                *(extra or FAST["saliency"]),
                f"{option}={value}",
            ]
            add(Case(f"saliency{option}={value!r}", argv))
    for value in ("nan", "-inf"):
        add(
            Case(
                f"sigma={value}",
                [
                    "saliency",
                    "{lib}/ok.png",
                    "--methods",
                    "forgrad",
                    f"--sigma={value}",
                ],
                expect="error",
            )
        )
    eval_values = {
        "--k": ["nan", "-0.1", "2", "inf"],
        "--sens-n": ["0", "a", "1,-2"],
        "--n-subsets": ["0", "1"],
        "--metrics": ["nope", "", ","],
        "--keep": ["nan", "2"],
        "--max-examples-per-batch": ["0", "-3"],
    }
    for option, values in eval_values.items():
        for value in values:
            add(
                Case(
                    f"eval{option}={value!r}",
                    ["eval", "{lib}/ok.png", *FAST["eval"], f"{option}={value}"],
                )
            )
    for kind in (
        "csv_user_file",
        "json_user_file",
        "csv_missing_folder",
        "csv_is_folder",
    ):
        add(
            Case(
                f"eval-{kind}",
                ["eval", "{lib}/ok.png", *FAST["eval"]],
                prepare="evalfile:" + kind,
                expect="error",
            )
        )
    for option, value in (
        ("--mode", "bad"),
        ("--blocks", "nope"),
        ("--init", "bad"),
        ("--score", "bad"),
        ("--layers", "nope"),
        ("--batchnorm-stats", "bad"),
    ):
        add(
            Case(
                f"sanity{option}={value}",
                ["sanity", "{lib}/ok.png", *FAST["sanity"], f"{option}={value}"],
                expect="error",
            )
        )
    for option, value in (
        ("--steps", "0"),
        ("--threads", "-1"),
        ("--sigma", "nan"),
        ("--methods", "nope"),
        ("--device", "meta"),
    ):
        add(
            Case(
                f"demo{option}={value}",
                ["demo", *FAST["demo"], f"{option}={value}"],
                expect="error",
            )
        )
    # signals mid-write, every command
    sigs = [signal.SIGINT, signal.SIGTERM] + (
        [signal.SIGHUP] if hasattr(signal, "SIGHUP") else []
    )
    for command in ("saliency", "eval", "sanity", "demo"):
        for sig in sigs:
            args = [command] + ([] if command in ("demo",) else ["{lib}/ok.png"])
            for existing in (False, True):
                add(
                    Case(
                        f"signal-{command}-{signal.Signals(sig).name}-"
                        f"{'existing' if existing else 'new'}",
                        args + FAST[command],
                        prepare="existing" if existing else None,
                        expect="signal",
                        signal=sig,
                    )
                )
    return cases


CASES = _cases()


# -- running one case ------------------------------------------------------------


def _tree(root: Path) -> dict:
    out = {}
    for d, dirs, files in os.walk(root):
        for n in dirs + files:
            p = os.path.join(d, n)
            rel = os.path.relpath(p, root)
            if os.path.islink(p):
                out[rel] = "link:" + os.readlink(p)
            elif os.path.isdir(p):
                out[rel] = "dir"
            else:
                out[rel] = hashlib.sha256(Path(p).read_bytes()).hexdigest()
    return out


def _prepare(case: Case, d: Path, lib: Path) -> tuple[str, set[str]]:
    """Build the sandbox; returns the --out value and the paths a successful
    run may write (relative to d)."""
    (d / "imgs").mkdir()
    shutil.copy(lib / "ok.png", d / "imgs" / "ok.png")
    out, allowed = str(d / "out"), {"out"}
    how = case.prepare or ""
    if how.startswith("name:"):
        name = how[5:]
        (d / "cwd").mkdir()
        target = (d / "cwd" / name).resolve()
        shutil.copy(lib / "ok.png", target)
        return out, allowed
    if how == "existing" or how.startswith("out:ours"):
        assert (
            main(
                [
                    "saliency",
                    str(lib / "ok.png"),
                    *FAST["saliency"],
                    "--out",
                    out,
                    "--no-progress",
                ]
            )
            == 0
        )
    kind = how[4:] if how.startswith("out:") else ""
    if kind in ("foreign", "foreign_run_json"):
        (d / "out").mkdir()
        (d / "out" / "thesis.tex").write_text("precious")
        if kind == "foreign_run_json":
            (d / "out" / "run.json").write_text('{"lr": 0.1}')
    elif kind == "ours_plus_file":
        (d / "out" / "notes.txt").write_text("mine")
    elif kind in ("eval_claims_ours", "eval_unfinished"):
        (d / "out").mkdir()
        status = "complete" if kind == "eval_claims_ours" else "running"
        (d / "out" / "run.json").write_text(
            f'{{"command": "captum-crigrad eval", "status": "{status}"}}'
        )
        (d / "out" / "thesis.tex").write_text("precious")
    elif kind == "legacy_ours":
        (d / "out").mkdir()
        (d / "out" / "run.json").write_text('{"command": "captum-crigrad saliency"}')
        (d / "out" / "predictions.csv").write_text("file\n")
    elif kind == "file":
        (d / "out").write_text("a file")
    elif kind == "link_to_folder":
        (d / "real").mkdir()
        os.symlink(d / "real", d / "out")
        allowed = {"real"}
    elif kind == "dangling_link":
        os.symlink(d / "later", d / "out")
        allowed = {"later"}
    elif kind == "link_to_file":
        (d / "f.txt").write_text("x")
        os.symlink(d / "f.txt", d / "out")
    elif kind == "deep_new":
        out, allowed = str(d / "a" / "b" / "c" / "out"), {"a"}
    elif kind == "read_only_parent":
        (d / "ro").mkdir()
        os.chmod(d / "ro", 0o555)
        out, allowed = str(d / "ro" / "out"), {"ro/out"}
    elif kind == "images_folder":
        out = str(d / "imgs")
    elif kind == "cwd":
        out = "."
    elif kind == "newline":
        out, allowed = str(d / "o\nut"), {"o\nut"}
    if how.startswith("evalfile:"):
        what = how[9:]
        if what == "csv_user_file":
            (d / "mine.csv").write_text("a,b\n1,2\n")
            case.argv += ["--csv", str(d / "mine.csv")]
        elif what == "json_user_file":
            (d / "mine.json").write_text("{}")
            case.argv += ["--json", str(d / "mine.json")]
        elif what == "csv_missing_folder":
            case.argv += ["--csv", str(d / "nope" / "r.csv")]
        else:
            case.argv += ["--csv", str(d / "imgs")]
    return out, allowed


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_hostile_case(case, library, tmp_path, capfd, monkeypatch):
    lib, _ = library
    d = tmp_path / "sandbox"
    d.mkdir()
    case = Case(case.name, list(case.argv), case.prepare, case.expect, case.signal)
    out, allowed = _prepare(case, d, lib)
    monkeypatch.chdir(d)  # whatever a case writes, it writes in its sandbox
    if case.prepare and case.prepare.startswith("name:"):
        monkeypatch.chdir(d / "cwd")
        allowed = {"cwd/out"}
        out = "out"
    argv = [a.replace("{lib}", str(lib)).replace("{d}", str(d)) for a in case.argv]
    if any(a.startswith("--out=") for a in argv):
        allowed = {a[len("--out=") :] for a in argv if a.startswith("--out=")}
    else:  # before a "--" that ends the options
        at = argv.index("--") if "--" in argv else len(argv)
        argv[at:at] = ["--out", out]
    if argv[0] != "demo":
        argv.insert(1, "--no-progress")
    if case.signal is not None:  # once every file is written, before the end
        import captum_crigrad.cli._output as output
        import captum_crigrad.evaluation.run_folder as run_folder

        for module in (output, run_folder):
            real = module.listing

            def listing_then_signal(folder, real=real):
                os.kill(os.getpid(), case.signal)
                return real(folder)

            monkeypatch.setattr(module, "listing", listing_then_signal)
    capfd.readouterr()
    before = _tree(d)
    lib_before = _tree(lib)
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse
        code = exc.code
    finally:
        if (d / "ro").exists():
            os.chmod(d / "ro", 0o755)
    _, err = capfd.readouterr()
    lines = err.strip().splitlines()
    after = _tree(d)
    leftovers = [p for p in after if "captum-crigrad-tmp" in p or ".tmp-" in p]
    assert not leftovers, f"temporary files left: {leftovers}"
    assert _tree(lib) == lib_before, "the library of user files changed"
    assert not (lib.parent / "PWNED").exists(), "a pickle ran code"
    changed = {p for p in set(before) | set(after) if before.get(p) != after.get(p)}
    if case.signal is not None:
        expected = 130 if case.signal == signal.SIGINT else 128 + case.signal
        outcome = "signal" if code == expected and len(lines) == 1 else "other"
        assert outcome == "signal", (code, err)
        if argv[0] == "eval":  # a resumable run: its folder stays, unfinished
            changed = {p for p in changed if not (p == "out" or p.startswith("out/"))}
        assert not changed, f"an interrupted run changed {sorted(changed)}"
    elif code == 2 and len(lines) == 1 and lines[0].startswith("captum-crigrad"):
        outcome = "error"
        assert not changed, f"a failed run changed {sorted(changed)}"
    elif code == 0:
        outcome = "success"
        outside = [
            p
            for p in changed
            if not any(p == a or p.startswith(a + os.sep) for a in allowed)
        ]
        assert not outside, f"a successful run changed user files: {outside}"
    else:
        outcome = "other"
    OUTCOMES[outcome] += 1
    assert outcome != "other", f"exit code {code}, stderr:\n{err}"
    if case.expect in ("error", "success"):
        assert outcome == case.expect, (outcome, err)


def test_fuzz_summary():
    """Printed with -s; the numbers go into docs/reliability.md."""
    total = sum(OUTCOMES.values())
    print(
        f"\nCLI fuzz: {len(CASES)} hostile cases generated, {total} run: "
        f"{OUTCOMES['error']} exit 2 with one line, {OUTCOMES['success']} success, "
        f"{OUTCOMES['signal']} interrupted cleanly by a signal, "
        f"{OUTCOMES['other']} anything else"
    )
    assert OUTCOMES["other"] == 0
