"""The device simulator: every checkpoint of the demo community, over the wire protocol.

from devices.simulator import Simulation, scenario_params
manifest = Simulation(scenario_params("normal-day", seed=1, speed=0), community,
                      mqtt_url="mqtt://127.0.0.1:1883", topic_prefix="cpm/v1").run()
"""

from .params import IncidentRates, SimulationParams
from .runner import Simulation
from .scenarios import SCENARIOS, scenario_params

__all__ = ["SCENARIOS", "IncidentRates", "Simulation", "SimulationParams", "scenario_params"]
