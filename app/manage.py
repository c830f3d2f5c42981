#!/usr/bin/env python3
"""Django's command-line utility for the scoreboard project."""

from scoreboard.__main__ import main

if __name__ == "__main__":
    main()
