"""The package version, in a module of its own so code below the public face can name it."""

__version__ = "0.2.0"
