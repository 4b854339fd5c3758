"""PyTorch reference networks (official state-dict layouts) used by parity tests and export checks."""
