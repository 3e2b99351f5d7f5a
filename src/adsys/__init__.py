"""adsys: a small, honest ad system for learning ML system design.

Modules are named after the boxes of the blueprint: ``world`` (ground truth),
``index``, ``selection``, ``features``, ``prediction``, ``auction``, ``pacing``,
``events``, ``metrics``, ``experiment``, ``monitoring``, ``simulate``.
"""

__version__ = "0.1.0"
