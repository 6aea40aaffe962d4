"""Training data for the built-in NLU, in Rasa 3 YAML (a package so the files ship in the wheel)."""
