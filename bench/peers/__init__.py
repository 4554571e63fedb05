"""Peer frameworks run through the same workloads as callcc, each in its own environment."""
