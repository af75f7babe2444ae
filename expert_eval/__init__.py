"""Blinded expert evaluation: anonymised trials, durable ratings, summary statistics."""
