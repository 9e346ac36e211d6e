# The two commands of the README: `make run` and `make test`. Both set up what they need first.
VENV := .venv
LISTEN ?= 127.0.0.1:5353

.PHONY: setup run test lint bench clean

setup:
	@scripts/setup

run: setup
	@echo "serving zones/ on $(LISTEN) (UDP+TCP); try: dig @127.0.0.1 -p 5353 www.example.com A"
	$(VENV)/bin/gslb serve --zones zones --listen $(LISTEN)

test: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/python -m pytest -q

lint: setup
	$(VENV)/bin/ruff check .

bench:
	@scripts/setup --bench
	$(VENV)/bin/python bench/dns_qps

clean:
	rm -rf $(VENV) build *.egg-info
	-make -s -C dataplane/bpf clean
