"""Audio in: decoding and resampling (io), batched log-mel features (features)."""
