# The two commands of the README: `make run` and `make test`. Both set up what they need first.
VENV := .venv
LISTEN ?= 127.0.0.1:5353
WEB ?= 127.0.0.1:8053

.PHONY: setup run test lint bench clean

setup:
	@scripts/setup

# Serves zones/ with the in-process store, the bundled test geo data and the embedded probe
# loop, which checks the demo endpoints `gslb demo` runs on 127.0.0.10-14:8080.
run: setup
	@echo "serving zones/ on $(LISTEN) (UDP+TCP). Try:"
	@echo "  dig @127.0.0.1 -p 5353 www.example.com A"
	@echo "  dig @127.0.0.1 -p 5353 www.gslb.example.com A +subnet=198.51.100.0/26   # a client in Germany"
	@echo "  curl -X POST 127.0.0.10:8080/down    # fail an endpoint and watch the answer move"
	@echo "  dashboard: http://$(WEB)/   metrics: http://$(WEB)/metrics"
	@$(VENV)/bin/gslb demo & demo=$$!; trap 'kill $$demo 2>/dev/null' EXIT INT TERM; \
	  $(VENV)/bin/gslb serve --zones zones --listen $(LISTEN) --web $(WEB)

test: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy
	$(VENV)/bin/python -m pytest -q

lint: setup
	$(VENV)/bin/ruff check .

bench:
	@scripts/setup --bench
	$(VENV)/bin/python bench/dns_qps

clean:
	rm -rf $(VENV) build *.egg-info
	-make -s -C dataplane/bpf clean
