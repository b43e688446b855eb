# Two commands: `make demo` (the main job) and `make test`. Both run the idempotent `make setup`.
VENV ?= .venv
BIN := $(VENV)/bin
export HF_HUB_OFFLINE := 1

.PHONY: setup test lint demo clean

setup:
	@VENV=$(VENV) ./scripts/setup.sh

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

test: lint
	@./scripts/run_pytest.sh $(BIN)/python $(PYTEST_ARGS)

demo: setup
	$(BIN)/rkdsc demo $(DEMO_ARGS)

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .ruff_cache
