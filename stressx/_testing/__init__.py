"""Loopback-only servers that stressx tests and `stressx demo`/`serve` aim load at.

`target` is a fast aiohttp server with tunable delay/status/size; `faults` is a
raw asyncio server that misbehaves on purpose (stall, garbage, reset, ...).
"""
