"""Thresholds that readers outside the model need without loading it.

The app's settings default to these (:mod:`hashtags.conf` runs at ``django.setup()``), so this
module imports nothing: reading a number must not start TensorFlow, which
:mod:`mlcore.fusion` pulls in through :mod:`mlcore.decoding`.
"""

from __future__ import annotations

#: Below this caption confidence the caption is marked as uncertain (not shown as fact).
LOW_CAPTION_CONFIDENCE = 0.5
