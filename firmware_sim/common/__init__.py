"""What several simulator families share, and nothing else: finding the broker and
advertising over mDNS (`net`), simulation time (`clock`), reconnect backoff (`backoff`) and
the per-device state file (`state`). A family imports only its own package and this one."""
