"""Spend: prices per provider and model (`prices`), the cost of a request from its usage."""
