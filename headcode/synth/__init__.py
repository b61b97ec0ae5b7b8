"""headcode.synth (grows with later issues)."""
