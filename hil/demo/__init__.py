"""``pumpemu demo``: a realistic clinic visit through the real serial path, in one command."""
