"""Benchmarks side by side with Asterisk's app_queue: `make bench` (`python -m bench`).

    instance.py   the bench Asterisk instance (own ports), its config, app_queue's arm, the
                  server as a process of its own, CPU and machine readings
    measures.py   the measures on real calls (1-5), arms alternating
    core_bench.py the ACD core alone, no I/O (6)
    memory.py     our server's memory with 10,000 waiting callers and 5,000 agents (7)
    stats.py      medians, percentiles, distributions
    report.py     bench/results/latest.json and docs/benchmarks.md (with SVG plots)

The load generator itself is `acd load` (:mod:`acd.tools.load`).
"""
