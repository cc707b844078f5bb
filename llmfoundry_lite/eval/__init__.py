"""HumanEval pass@k with every sample executed in a bubblewrap sandbox, FIM infilling, and a training callback."""
