"""The web client: the join page people use, the development demo page, and their bundle."""
