"""Training callbacks: throughput/MFU, loss-spike detection, numerical health, run info."""
