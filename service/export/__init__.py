"""Exports of a trained network to formats other servers run: ONNX
(``GET /networks/{id}/onnx``)."""
