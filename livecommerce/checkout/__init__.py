"""Purchases, orders and their state machine, the Stripe gateway, webhooks and refunds."""
