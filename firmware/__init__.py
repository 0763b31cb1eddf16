"""Firmware: hls4ml conversion of QKeras models, bit-accuracy validation, HLS project emission and reports."""
