"""ONNX in and out: ``export`` an rnnkit model, ``load`` / ``run`` an ONNX graph on rnnkit.

    import rnnkit.onnx
    rnnkit.onnx.export(model, "model.onnx", lengths=True, state=True)   # standard operators
    outputs = rnnkit.onnx.run("model.onnx", {"input": x, "lengths": lens, ...})
    graph = rnnkit.onnx.load("model.onnx"); graph.run({...})           # parse once, run often

Needs the ``onnx`` package (onnxruntime is not needed). Details in
``rnnkit.interop.onnx_export`` and ``rnnkit.interop.onnx_import``.
"""
from rnnkit.interop.onnx_export import export
from rnnkit.interop.onnx_import import OnnxGraph, load, run

__all__ = ["export", "load", "run", "OnnxGraph"]
