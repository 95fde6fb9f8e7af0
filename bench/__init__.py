"""Load scenarios and their report (`make bench`); never run by `make test`."""
