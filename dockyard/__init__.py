"""dockyard: a container engine that speaks Docker's Engine API.

Kept empty on purpose: the CLI imports ``dockyard.cli`` and must not pay for the engine.
"""

__version__ = "0.1.0"
