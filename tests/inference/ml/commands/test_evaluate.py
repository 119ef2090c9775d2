import json

from inference.ml.cli import main


def test_evaluate_prints_the_table_and_writes_json(mosaic_folder, tiny_weights, tmp_path, capsys):
    out = tmp_path / "report.json"
    status = main(["evaluate", "--weights", str(tiny_weights), "--data", str(mosaic_folder), "--json", str(out),
                   "--mode", "fast"])
    assert status == 0
    printed = capsys.readouterr().out
    assert "| background |" in printed and "mean Dice" in printed
    report = json.loads(out.read_text())
    assert len(report["per_mosaic"]) == 2
    assert report["pooled"]["labelled_pixels"] == 2 * 64 * 64
