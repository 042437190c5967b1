# byoc — every command a developer or CI needs. `make help` lists them.
SHELL := /bin/bash
.DEFAULT_GOAL := help

# The machine's Node is 20: jsii warns it is deprecated, and since 2026-10-30 that it is
# end of life. Both banners are silenced; the CDK still runs on it (see docs/cdk.md).
export JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION := 1
export JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION := 20
# The CDK CLI is pinned: the same version locally, in CI and in every deploy.
CDK_CLI   := npx --yes aws-cdk@2.1148.1
GO        ?= go
FUNCTIONS := $(notdir $(wildcard functions/*))
# The service-state functions: `make invoke` registers the sample data planes for them first.
STATE_FUNCTIONS := stateingest statesweep statewait sendcommand
HOST_OS   := $(shell $(GO) env GOOS)
HOST_ARCH := $(shell $(GO) env GOARCH)
# The deployed binaries are built reproducibly (-trimpath). The local cloud's are built as the
# tests build (no -trimpath, and CGO off everywhere: CGO_ENABLED changes the build of every
# package above net), so a cold make test compiles the dependencies once for this machine,
# not once for the binaries and again for vet and the tests.
export CGO_ENABLED := 0
GOFLAGS_LOCAL  := -tags lambda.norpc -ldflags "-s -w"
GOFLAGS_LAMBDA := -trimpath $(GOFLAGS_LOCAL)

# Fuzz targets, "<package> <target>". Every function's input decoding has one: onboard and
# stackevents decode through shared/stackevent, stateingest through shared/statemsg, invite's
# settings through shared/settings. QUICK_FUZZ are the ones whose packages build without the
# local cloud: `make test` runs each briefly, `make fuzz` runs all of them for FUZZTIME.
QUICK_FUZZ := ./shared/stackevent:FuzzParse ./shared/statemsg:FuzzParse ./shared/settings:FuzzNormalize ./shared/network:FuzzNewPlan
FUZZ       := $(QUICK_FUZZ) ./functions/invite:FuzzDecode ./functions/provision:FuzzParseCaught \
              ./functions/statesweep:FuzzAsOf ./functions/statewait:FuzzRequest ./functions/sendcommand:FuzzDecodeRequest
FUZZTIME   ?= 30s

.PHONY: help build build-deploy build-local synth test fuzz bench chaos lint invoke local byoc deploy clean

help: ## list the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-13s %s\n", $$1, $$2}'

build: build-deploy build-local ## every function: build/<fn>/bootstrap (linux/arm64) and build/local/<fn>/bootstrap (this machine)

# One go build per platform: the functions compile and link in parallel (one build per
# function linked them one after another, most of a warm build), then each binary moves to
# <dir>/<fn>/bootstrap, the name Lambda's provided runtime runs.
build-deploy:
	@echo "build  $(FUNCTIONS) (linux/arm64)"
	@rm -rf build/.out/arm64 && GOOS=linux GOARCH=arm64 $(GO) build $(GOFLAGS_LAMBDA) -o build/.out/arm64/ $(addprefix ./functions/,$(FUNCTIONS))
	@for fn in $(FUNCTIONS); do mkdir -p build/$$fn && mv build/.out/arm64/$$fn build/$$fn/bootstrap || exit 1; done

build-local:
	@echo "build  $(FUNCTIONS) ($(HOST_OS)/$(HOST_ARCH), for the local cloud)"
	@rm -rf build/.out/local && $(GO) build $(GOFLAGS_LOCAL) -o build/.out/local/ $(addprefix ./functions/,$(FUNCTIONS))
	@for fn in $(FUNCTIONS); do mkdir -p build/local/$$fn && mv build/.out/local/$$fn build/local/$$fn/bootstrap || exit 1; done

synth: build-deploy ## write the control-plane, bootstrap and infrastructure templates to cdk.out/
	$(GO) run ./infra

test: build synth ## run every test (unit, CDK assertions + cdk-nag, local-cloud end to end), then the quick fuzz targets for 3 s each
	$(GO) vet ./...
	@# The output is kept in build/test.log; on a failure its failing tests and their messages
	@# are repeated last, where a CI log's tail shows them.
	set -o pipefail; BYOC_LOCAL_FUNCTIONS=$(CURDIR)/build/local $(GO) test -count=1 -timeout 30m ./... 2>&1 | tee build/test.log || { rc=$$?; \
	  echo "== failed (the whole output is in build/test.log):"; \
	  grep -E -- '--- FAIL|^FAIL|^panic|^[[:space:]]+[[:alnum:]_]+_test\.go:[0-9]+: |^[^[:space:]]+\.go:[0-9]+:[0-9]+: ' build/test.log | cut -c1-500 | head -80; exit $$rc; }
	@$(MAKE) --no-print-directory fuzz FUZZ="$(QUICK_FUZZ)" FUZZTIME=3s

fuzz: ## run every fuzz target for FUZZTIME each (default 30s): make fuzz FUZZTIME=5m
	@for t in $(FUZZ); do \
	  pkg=$${t%%:*}; target=$${t##*:}; echo "fuzz   $$target in $$pkg for $(FUZZTIME)"; \
	  $(GO) test -run '^$$' -fuzz "^$$target\$$" -fuzztime $(FUZZTIME) $$pkg || exit 1; \
	done

bench: build synth ## benchmarks: workflow engine, local cloud start and onboarding, state ingest (10,000 messages through the local cloud)
	$(GO) test -run '^$$' -bench . -benchmem ./...

lint: ## gofmt and go vet
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

invoke: build synth ## run one function on one sample event against the local cloud: make invoke FN=onboard EVENT=events/onboard/x.json
	@test -n "$(FN)" -a -n "$(EVENT)" || { echo "usage: make invoke FN=<function> EVENT=<events/...json>"; exit 2; }
	$(GO) run ./infra/local/cmd/byoc-local invoke --function $(FN) --event $(EVENT) \
		$(if $(filter $(FN),$(STATE_FUNCTIONS)),--data-planes events/dataplanes.json)

byoc: ## the operator CLI: make byoc ARGS="deployments list" (or go run ./infra/cmd/byoc; ARGS=--help)
	$(GO) run ./infra/cmd/byoc $(ARGS)

local: build synth ## run the control plane end to end on the local cloud (ARGS=--help for options)
	$(GO) run ./infra/local/cmd/byoc-local $(ARGS)

chaos: build synth ## every scenario under injected AWS faults, SEEDS seeds each (default 20): make chaos [SCENARIO=..] [PROFILE=..] [SEED=..]
	$(GO) run ./infra/local/cmd/byoc-local chaos $(if $(SCENARIO),--scenario $(SCENARIO)) $(if $(PROFILE),--profile $(PROFILE)) \
		$(if $(SEED),--seed $(SEED)) $(if $(SEEDS),--seeds $(SEEDS)) $(ARGS)

deploy: build synth ## deploy the control plane to the AWS account of your current credentials
	$(CDK_CLI) deploy ByocControlPlane --app cdk.out --require-approval broadening

clean: ## remove build outputs
	rm -rf build cdk.out
