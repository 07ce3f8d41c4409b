"""The simulated PJLink Class 2 projector (`firmware-sim projector`) and its media player.

`model` is the projector's state machine and `pjlink` the sans-I/O PJLink server, both pure;
`runtime` is the asyncio side (TCP, UDP search and notifications, `_pjlink._tcp`, the state
file); `player` is the projector's Homie 5 media player, built on `firmware_sim.homie`.
"""

from .model import ProjectorConfig
from .player import MediaPlayer
from .runtime import ProjectorSim

__all__ = ["MediaPlayer", "ProjectorConfig", "ProjectorSim"]
