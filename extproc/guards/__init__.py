"""Prompt and response guards: find sensitive content (PII, secrets, deny-listed words) in
text, then reject or mask it.

Modules: `detectors` (the sans-IO `Detector` contract, the built-in detectors, custom RE2
patterns and literal deny-lists), `scanner` (several detectors at once: overlap resolution,
masking, the built-in catalogue).
"""
