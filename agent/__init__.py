"""devposture agent: observes a computer's security posture and reports facts to the collector."""

import os

__version__ = "0.1.0"

# gRPC's own log goes past Python's logging straight to stderr: errors only, unless IT set
# GRPC_VERBOSITY in the service's environment. A line per failed TLS handshake ("I1205 …
# ssl_transport_security.cc … Handshake failed") landed between the agent's own words, and
# in the employee's terminal. Read when grpc is first imported, so set here, before that.
os.environ.setdefault("GRPC_VERBOSITY", "ERROR")
