"""Training: the LightningModules (systems), losses (SPEC eqs 1-8), schedules (eqs 6, 9, 10), callbacks."""
