"""HTTP plumbing shared by every surface: error envelopes, body limits, common dependencies."""
