"""`srender batch`: many render jobs on a Ray cluster (local or remote); see docs/agents.md."""
