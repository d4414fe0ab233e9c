"""Interchange with other quantized-network tool flows (QONNX for FINN / hls4ml users)."""
