"""benchmarks/export_fidelity.py: the project's Resizing exports what the model computes."""

import export_fidelity
from support.benchmarks import run_benchmark

import flatnas_tf.space.hypermodel as hypermodel_module
from flatnas_tf.space.resizing import Resizing


def test_serve_and_tflite_agree_with_predict_for_the_projects_resizing(tmp_path):
    argv = ["--resolution", "28", "--images", "4"]
    result = run_benchmark(export_fidelity.main, tmp_path / "export_fidelity.json", *argv)
    ours = result["Resizing"]
    assert ours["export_notes"] == []  # TFLite converted
    tolerance = 1e-5 * max(1.0, ours["logit_scale"])
    assert ours["serve_vs_predict_max_abs"] <= tolerance
    assert ours["top1_agreement_serve_vs_predict"] == 1.0
    assert ours["serve_batch1_vs_batch32_image0"] <= tolerance
    assert ours["tflite_vs_serve_max_abs"] <= 1e-4 * max(1.0, ours["logit_scale"])
    assert set(result["keras.layers.Resizing"]) >= {"export_notes", "serve_vs_predict_max_abs"}
    assert hypermodel_module.Resizing is Resizing  # the space's layer put back
