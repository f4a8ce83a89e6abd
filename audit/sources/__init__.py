"""Where audit data comes from besides the user's own files: the public fairness data
sets (``public``)."""
