"""Offline stream running: plan, manifest, writer, runner, monitor, rate control (any model kind)."""
