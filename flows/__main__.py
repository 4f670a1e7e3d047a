"""`python -m flows ...` is the same as the `movie-ratings` command."""

from flows.cli import main

if __name__ == "__main__":  # Dask's worker processes re-import the main module: do not rerun the CLI there
    main()
