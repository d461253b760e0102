"""DeSPITE training module (torch): encoders, losses, data, training, evaluation and ONNX export.

Never imported by the runtime (`rt_reid`); the runtime only consumes the exported ONNX files and
their manifest.
"""
