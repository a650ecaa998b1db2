"""The lending library's code: loans, and the background jobs firetasks runs for them."""
