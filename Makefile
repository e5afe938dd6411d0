# The two set-up commands of the README. Both install first (idempotent, see scripts/install.sh).
.PHONY: install run test

install:
	bash scripts/install.sh

run: install
	hwmodel

test: install
	python3 -m pytest -q
