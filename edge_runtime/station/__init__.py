"""The operator station: the device's own screen, served locally (``elvmass station``).

A small Starlette application on uvicorn (the ``station`` extra) that drives the same
:class:`~edge_runtime.runtime.session.RuntimeSession` as ``elvmass run``: Patient -> Acquire -> Result,
the stored Results and the Device page. Templates and static files ship as package data; no CDN, no
front-end build step. See docs/station.md.
"""
