"""Layer 3, the runtime: namespaces, the container's rootfs, and running it under its shim.

Modules (import them directly; this package imports nothing so that importing it stays cheap):

- ``spec``: :class:`ContainerSpec` / :class:`ProcessSpec`, what the containers service fills in.
- ``spawn``: ``spawn(spec) -> Spawned`` (blocking: run it in a worker thread), ``Spawned.go()``,
  ``Spawned.abort()``, ``reap(shim_pid)``.
- ``shim``: the C shim's binary (``shim_binary()``), its wire protocol (``FRAME``,
  ``encode_frame``, ``decode_frames``, ``AttachClient``) and exit record (``read_exit_record``).
- ``rootfs``: mounts done by the container init before ``pivot_root``; ``resolve_in_root``.
- ``users``: Docker user specs against the image's passwd/group.
- ``syscalls``, ``loopback``: ctypes wrappers and ``lo`` up.

Reaping: the shim is P0, the daemon's own forked child that exec'd ``dockyard-shim``. The daemon
must reap it when it exits (``reap(shim_pid)`` or its child watcher), or it stays a zombie. After a
daemon restart the shims are no longer its children; ``reap`` then returns None (ECHILD ignored)
and the exit is learnt from ``containers/<id>/exit``. The container init is the shim's child.

Long state paths: ``attach.sock`` may be longer than ``sun_path`` allows; connect through
``/proc/self/fd/N/attach.sock`` of an ``O_PATH`` fd of the directory (``shim.connect_attach``).
"""
