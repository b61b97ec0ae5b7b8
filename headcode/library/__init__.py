"""headcode.library (grows with later issues)."""
