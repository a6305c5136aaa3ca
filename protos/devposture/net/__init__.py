"""What the agent and IT's remote admin CLI both need to reach a collector: its address, its CA
pinned by fingerprint, the words for a failed call, and one diagnosing TLS connection."""
