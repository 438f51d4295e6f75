"""Python scenarios run inside a shard: virtual users (user.py) over the compiled connection
(engine/_flow.pxi), WebSocket (ws.py), and the shard's loop of users and iterations (runner.py).
The workload file itself is loaded by stressx.load.flowfile."""
