"""End-to-end tests: pumpemu serve as a subprocess, driven over real ptys and sockets."""
