"""``python -m brain_workbench.cli``: the same as the ``workbench`` console script."""

from brain_workbench.cli import main

main()
