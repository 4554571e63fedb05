"""callcc: declarative agents that suspend anywhere and resume from a continuation."""
