"""One ranked list from three kinds of evidence: captions, tag heads, the ImageNet classifier.

(Work in progress: the calibrated fusion lands here.)
"""

from __future__ import annotations

#: Below this caption confidence the caption is marked as uncertain (not shown as fact).
LOW_CAPTION_CONFIDENCE = 0.5
