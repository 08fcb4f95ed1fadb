"""Example sweep configs; shipped so `workbench demo` finds configs/demo.yaml when installed."""
