"""What the plugin says to one engine and keeps on one host."""
