"""Workloads built on the agent, as libraries: evaluation, batches, workflows, the benchmark, the doctor's checks.

They return records and call callbacks; none prints, parses flags or imports the CLI (`agent.cli`).
"""
