"""Built-in plugins of brain-workbench, installed as ``workbench_plugins``; each registers through the `workbench` entry-point group."""
