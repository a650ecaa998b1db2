"""Functions for the test suite and the benchmark. main.py loads them only when FIRETASKS_TESTING=1
(`make test`, `make bench`); `firebase.json` keeps this package out of deploys."""
