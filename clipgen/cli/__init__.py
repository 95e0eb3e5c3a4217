"""The command line: the only package that reads argv and talks to the terminal."""
