"""Testing tools for nanonet layers (needs the ``test`` extra for strategies)."""
