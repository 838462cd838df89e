"""Workflow definitions: deterministic state machines, no I/O."""
