"""headcode.replace (grows with later issues)."""
