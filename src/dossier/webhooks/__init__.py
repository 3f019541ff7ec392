"""Webhook delivery: events, endpoints, wire profiles, the dispatcher and delivery history."""
