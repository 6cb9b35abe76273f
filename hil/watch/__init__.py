"""``pumpemu watch``: a live terminal dashboard of one served pump (docs/watch.md).

- ``model``: the dashboard's state, built from control API events (docs/serve.md,
  "subscribe") and rendered as text, with no terminal: tested on its own;
- ``keys``: the key bindings and the control request each one sends;
- ``feed``: the thread that reads the event stream;
- ``app``: the textual application that shows the model and sends the requests;
- ``command``: the click command.
"""
