"""The example app: a web shop whose orders queue a confirmation email and their processing."""
