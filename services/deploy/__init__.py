"""Deployment: `cpmon up`, device provisioning, the broker's configuration, retention."""
