"""Delivery and cost: what the providers report of each code sent (delivery status,
real price, conversion), synced into `delivery_attempts`."""
