"""`python -m flows ...` is the same as the `movie-ratings` command."""

from flows.cli import main

main()
