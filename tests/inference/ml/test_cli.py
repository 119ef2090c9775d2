import numpy as np
import pytest
import tifffile
from PIL import Image

from inference.ml.cli import build_parser, main
from inference.ml.synthetic import generate_mosaic, read_um_per_px


def test_generate_writes_one_set_of_files_per_seed(tmp_path):
    out = tmp_path / "mosaics"
    argv = ["generate", "--out", str(out), "--count", "2", "--height", "48", "--width", "64"]
    status = main([*argv, "--um-per-px", "8", "--seed", "5", "--shift", "0.5"])
    assert status == 0
    assert sorted(p.name for p in out.iterdir()) == [
        "synthetic_5.tif",
        "synthetic_5_partial.png",
        "synthetic_5_truth.png",
        "synthetic_6.tif",
        "synthetic_6_partial.png",
        "synthetic_6_truth.png",
    ]
    expected = generate_mosaic(height=48, width=64, um_per_px=8.0, seed=6, shift=0.5)
    np.testing.assert_array_equal(tifffile.imread(out / "synthetic_6.tif"), expected.image)
    np.testing.assert_array_equal(np.asarray(Image.open(out / "synthetic_6_partial.png")), expected.partial)
    assert read_um_per_px(out / "synthetic_6.tif") == pytest.approx(8.0)


def test_subcommands_are_discovered_from_the_commands_package():
    parser = build_parser()
    for name in ("generate", "gallery"):
        assert callable(parser.parse_args([name, "--out", "x"]).func)


def test_a_subcommand_is_required(capsys):
    with pytest.raises(SystemExit) as exc:
        main([])
    assert exc.value.code == 2
    assert "<subcommand>" in capsys.readouterr().err


def test_generate_rejects_a_bad_count(tmp_path):
    with pytest.raises(SystemExit, match="--count"):
        main(["generate", "--out", str(tmp_path), "--count", "0"])
