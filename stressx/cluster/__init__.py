"""Scale-out over a Ray cluster: one agent per host, one common start, one merged result.

`stressx run URL --cluster ADDRESS` (or `stressx.run(..., cluster=...)`) goes through
`driver.run_cluster`: the driver (where the command runs) places one `agent.Agent` actor on each
load host (a placement group with STRICT_SPREAD), each agent runs the normal coordinator and its
shards there with its part of the global schedule, the driver probes the hosts' clocks and hands
each one start instant on its own clock, merges the per-second histogram deltas the agents send
(`wire`), and at the end gathers every host's results directory and merges the summary.

Ray is an optional extra (`pip install "stressx[ray]"`), imported only inside these modules'
functions: `import stressx.cluster` and every single-host run leave it unloaded.
"""
