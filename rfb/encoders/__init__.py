"""Encode routes behind the EncoderBackend seam, one module per route, plus the registry."""
