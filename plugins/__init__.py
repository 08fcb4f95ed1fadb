"""Built-in plugins of brain-workbench, installed as ``brain_workbench_plugins``.

Each registers through the `workbench` entry-point group."""
