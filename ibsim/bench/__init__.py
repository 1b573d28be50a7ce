"""The monitoring benchmark: which way of monitoring an InfiniBand fabric scales.

Real OpenSM with PerfMgr and event plugins, real infiniband-diags sweeps,
real node_exporter and Prometheus, and ibsim's direct export, one after
another against the same live simulated fabric; ground truth from the engine.

ofed      run OpenSM and infiniband-diags against a MAD server (umad2sim environment, PIDs)
carbon    a private carbon-cache: start, read back (cache query + whisper), stop by PID
sweeps    the tool-sweep collector (perfquery per switch, ibqueryerrors), its own process
plugins   OpenSM PerfMgr event plugins in C (naive, batched): build, opensm.conf, load check
live      the live fabric every approach watches (scenario, clock, MAD server, OpenSM, truth)
approaches, suite, report, procs, prometheus: the suite itself
"""
