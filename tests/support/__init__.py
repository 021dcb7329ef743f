"""Real infrastructure for tests: a Ray cluster of two nodes, a SeaweedFS S3 server, socket checks."""
