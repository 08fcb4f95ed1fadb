"""Built-in plugins of brain-workbench, installed as ``brain_workbench_plugins``; each registers through the `workbench` entry-point group."""
