"""Looking at data: drawing samples with their labels."""
