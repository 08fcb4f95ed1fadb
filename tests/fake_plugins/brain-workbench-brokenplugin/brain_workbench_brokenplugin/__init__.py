"""A plugin whose import fails, as when one of its dependencies is not installed."""

raise ImportError("brain-workbench-brokenplugin needs the package 'definitely-not-installed'; pip install it")
