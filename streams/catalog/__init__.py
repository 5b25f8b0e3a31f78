"""The catalog agent (``streamrec catalog``), a process of its own beside the workers: it turns
the items topic into the content vectors every worker follows."""
