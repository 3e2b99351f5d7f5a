"""The ground truth, hidden from the platform: see :mod:`adsys.world.model`.

Only the simulation loop (:mod:`adsys.simulate`, :mod:`adsys.baseline`,
:mod:`adsys.report`, the command line), the course's analysis cells and the
exercise checks may import this package. The platform receives ``World.view``.
"""

from adsys.world.config import DEFAULT_CONFIG, WorldConfig
from adsys.world.model import World

__all__ = ["DEFAULT_CONFIG", "World", "WorldConfig"]
