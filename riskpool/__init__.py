"""The application shell: the ``riskpool`` command line and settings."""

__version__ = "0.1.0"
