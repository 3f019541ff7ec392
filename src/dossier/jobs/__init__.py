"""Entity-resolution and firmographics jobs (document 003): one-off requests run on the work queue."""
