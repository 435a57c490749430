"""The registry server: `dockyard registry serve` (OCI distribution spec v1.1) and `dockyard registry gc`.

It stands beside the engine: it uses only the content store (``content/``) and the shared layer 0
(``errors.py``), never images, containers, the runtime or the Engine API.
"""
