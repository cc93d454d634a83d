"""Payments: the Stripe gateway (the only importer of stripe), emulator, webhooks, refunds."""
