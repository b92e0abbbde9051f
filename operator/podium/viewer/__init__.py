"""The run viewer (`podium ui`): a small read-only web page over a namespace's Orchestrations.

Layers, each with one job:

* :mod:`podium.viewer.model` and :mod:`podium.viewer.pictures` (pure): the JSON the page draws, built from what a
  run leaves behind (the Orchestration's status, its journal, its events, its agents' results, its shared state).
* :mod:`podium.viewer.source` (I/O): reads those through the data plane's own readers and the Kubernetes API.
* :mod:`podium.viewer.server` (aiohttp): GET-only JSON API and the static page in ``static/``.
* :mod:`podium.viewer.cli`: the `podium ui` command.
"""
