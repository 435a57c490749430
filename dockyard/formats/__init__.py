"""Docker's value notations, parsed in one place for the whole engine (layer 0: stdlib and errors only).

- :mod:`~dockyard.formats.timestamps`: RFC 3339 times, and the ``since``/``until`` values
  (a time, unix seconds, or a Go duration back from now);
- :mod:`~dockyard.formats.durations`: Go durations (``1h30m``, ``300ms``);
- :mod:`~dockyard.formats.signals`: signal names and numbers (``SIGTERM``, ``term``, ``15``);
- :mod:`~dockyard.formats.sizes`: go-units sizes (``10m``, ``1.5GiB``), decimal or binary.

The CLI (layer 6) may not import these; its own client-side copies live in ``dockyard/cli/units.py``.
"""
