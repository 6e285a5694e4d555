# kplane - `make help` lists the targets. Two commands on a fresh machine: `make up`, `make test`.
SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

ENV   ?= dev
NAME  ?= $(ENV)
NODES ?= 2
# Every recipe that runs tools gets the cached toolchain on PATH (see tools/env.sh).
WITH_TOOLS := eval "$$(tools/env.sh)" &&
BIN := .state/bin
GO_TEST_FLAGS ?=
# How many integration tests run at once: most of their time is spent waiting on servers.
TEST_PARALLEL ?= 3
REPORT_LANG ?= en
# The policy packs (commands under cmd/ that serve Pulumi's analyzer protocol).
POLICY_PACKS := kplane-kubernetes

.PHONY: help tools tools-up env check-env store store-stop images images-defaults cluster cluster-stop cluster-delete cluster-status up preview refresh down e2e-identity e2e-mesh e2e-gateway e2e-fleet e2e-backup e2e-pods \
        test test-unit test-integration lint bench kplane-bin policy-packs clean

help: ## list the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-z-]+:.*## / {printf "  \033[1m%-16s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)
	@echo "  variables: ENV=$(ENV) NAME=$(NAME) NODES=$(NODES) REPORT_LANG=$(REPORT_LANG) KPLANE_CACHE=$${KPLANE_CACHE:-~/.cache/kplane}"

tools: ## build Pulumi, the Kubernetes provider, kcp, KWOK, Gatekeeper, Velero, SeaweedFS, the CSI snapshot controller, kube-bench, istioctl, the image-trust tools (distribution registry, cosign, Trivy, policy-controller), Argo CD and Helm, the real nodes' runtime (containerd, runc, CNI, kubelet, kube-proxy, CoreDNS), fetch Keycloak, OpenBao, swagger-ui and the platform's charts, install OpenLDAP, promtool and Chromium (once per machine and version)
	@tools/build.sh

tools-up: ## build only what `make up` needs: Pulumi, the Kubernetes provider, kcp, KWOK, Velero and SeaweedFS (the local backup store), Keycloak and OpenLDAP (the local identity), the platform's charts; REAL=1 adds the real nodes' runtime
	@tools/build.sh pulumi kubernetes-provider kcp kwok velero seaweedfs keycloak openldap charts plugins $(if $(REAL),node)

env: ## print shell lines for PATH, PULUMI_HOME, backend and dev passphrase: eval "$(make -s env)"
	@tools/env.sh

kplane-bin:
	@mkdir -p $(BIN)
	@go build -o $(BIN)/kplane ./cmd/kplane
	@go build -o $(BIN)/cluster ./tests/testbed/cmd/cluster
	@go build -o $(BIN)/identity ./tests/testbed/cmd/identity
	@go build -o $(BIN)/store ./tests/testbed/cmd/store

policy-packs: ## build the policy packs and print their paths, one per line, for --policy-pack
	@mkdir -p $(BIN)/policy-packs
	@for p in $(POLICY_PACKS); do go build -o $(BIN)/policy-packs/$$p ./cmd/$$p || exit 1; \
	  echo $(CURDIR)/$(BIN)/policy-packs/$$p; done

check-env:
	@test -f environments/$(ENV)/platform.yaml || { echo "unknown environment '$(ENV)': environments/ has $$(ls environments | tr '\n' ' ')- create environments/$(ENV)/platform.yaml or pick one of those" >&2; exit 2; }

cluster: tools-up kplane-bin ## start the local cluster NAME (default: ENV) with NODES KWOK nodes, or with REAL=1 nodes that run real pods (trusting ENV's local identity when started)
	@authn=.state/identity/$(ENV)/authentication-config.yaml; \
	$(WITH_TOOLS) $(BIN)/cluster start $(NAME) --nodes $(NODES) $(if $(REAL),--real) $$(test -f $$authn && echo --authentication-config $$authn)

identity: check-env tools-up kplane-bin ## start ENV's identity on this machine: OpenLDAP (demo organisation) + Keycloak with ENV's realm
	@$(WITH_TOOLS) $(BIN)/identity start --env $(ENV)

identity-stop: kplane-bin ## stop ENV's local identity
	@$(BIN)/identity stop --env $(ENV)

cluster-stop: kplane-bin ## stop the local cluster NAME (its data is kept)
	@$(BIN)/cluster stop $(NAME)

cluster-delete: kplane-bin ## stop the local cluster NAME and delete its data
	@$(BIN)/cluster delete $(NAME)

cluster-status: kplane-bin ## list local clusters
	@$(BIN)/cluster status

store: check-env cluster ## start ENV's backup store on this machine (SeaweedFS S3 + Velero against the local cluster NAME)
	@$(WITH_TOOLS) $(BIN)/store start --env $(ENV) --kubeconfig .state/clusters/$(NAME)/kubeconfig

store-stop: kplane-bin ## stop ENV's local backup store
	@$(BIN)/store stop --env $(ENV)

up: check-env identity cluster store ## tools -> local identity, cluster and backup store -> pulumi up of the whole platform (environments/ENV); ends with a summary per capability
	@$(WITH_TOOLS) $(BIN)/kplane up --env $(ENV) --kubeconfig .state/clusters/$(NAME)/kubeconfig --charts "$$KPLANE_CHARTS"

preview: check-env cluster ## the PR check: preview ENV with the policy packs; fails on mandatory violations; report in .state/reports/ENV (REPORT_LANG=en|ko)
	@packs=$$($(MAKE) -s policy-packs) || exit 1; \
	$(WITH_TOOLS) $(BIN)/kplane preview --env $(ENV) --kubeconfig .state/clusters/$(NAME)/kubeconfig --charts "$$KPLANE_CHARTS" \
	  $$(for p in $$packs; do printf -- '--policy-pack %s ' $$p; done) \
	  $$(test -f environments/$(ENV)/policy-pack.json && echo --policy-pack-config environments/$(ENV)/policy-pack.json) \
	  --report-dir .state/reports/$(ENV) --lang $(REPORT_LANG)

refresh: check-env cluster ## pulumi refresh of the platform stack for ENV
	@$(WITH_TOOLS) $(BIN)/kplane refresh --env $(ENV) --kubeconfig .state/clusters/$(NAME)/kubeconfig --charts "$$KPLANE_CHARTS"

down: check-env tools-up kplane-bin ## pulumi destroy of the platform stack for ENV, then stop its local cluster
	@if [ -f .state/clusters/$(NAME)/kubeconfig ]; then \
	   $(WITH_TOOLS) $(BIN)/cluster start $(NAME) --nodes $(NODES) >/dev/null && \
	   $(WITH_TOOLS) $(BIN)/kplane down --env $(ENV) --kubeconfig .state/clusters/$(NAME)/kubeconfig --charts "$$KPLANE_CHARTS"; \
	 else echo "no local cluster $(NAME): nothing to destroy"; fi
	@$(BIN)/store stop --env $(ENV)
	@$(BIN)/cluster stop $(NAME)
	@$(BIN)/identity stop --env $(ENV)

images: ## build kplane's own images (no Docker engine) into the OCI layout .state/images and print their digests
	@tools/build.sh swagger-ui
	@$(WITH_TOOLS) go run ./cmd/kplane-images --out .state/images

images-defaults: ## build the images and make their digests the components' defaults (components/images/digests.go)
	@tools/build.sh swagger-ui
	@$(WITH_TOOLS) go run ./cmd/kplane-images --out .state/images --write-defaults components/images/digests.go

test: tools ## all tests: unit, policy and integration against real local clusters (what CI runs); ends with the ten slowest tests and packages (every event in .state/test.json)
	@mkdir -p $(BIN) && go build -o $(BIN)/testreport ./tools/testreport
	@$(WITH_TOOLS) go test -count=1 -timeout 60m -parallel $(TEST_PARALLEL) -json $(GO_TEST_FLAGS) ./... | tee .state/test.json | $(BIN)/testreport

e2e-identity: tools ## the identity end to end alone: real OpenLDAP + Keycloak, realm sync, an API server trusting the realm
	@$(WITH_TOOLS) go test -count=1 -timeout 20m -run 'TestIdentity' -v ./tests/integration/

e2e-mesh: tools ## the mesh end to end alone: Istio's charts on a real API server, istioctl analyze, the certificate alerts under promtool
	@$(WITH_TOOLS) go test -count=1 -timeout 20m -run 'TestMesh' -v ./tests/integration/

e2e-gateway: tools ## the gateway end to end alone: Kong and Istio routes on a real API server, the catalog behind real Keycloak in headless Chromium
	@$(WITH_TOOLS) go test -count=1 -timeout 20m -run 'TestGateway|TestCatalogPortal' -v ./tests/integration/

e2e-fleet: tools ## the fleet end to end alone: three real clusters registered, health-checked and synced by real Argo CD in waves, a pull member synced by its own Argo CD, then deregistered
	@$(WITH_TOOLS) go test -count=1 -timeout 20m -run 'TestFleet' -v ./tests/integration/

e2e-pods: tools ## real pods: two real nodes (containerd, runc, CNI, kubelet, kube-proxy) with CoreDNS, then the composed dev platform in real pods (istiod injecting, Velero backing up on its schedule and restoring) and Gatekeeper refusing in pods, from upstream images built here
	@tools/build.sh images
	@$(WITH_TOOLS) KPLANE_E2E_PODS=1 go test -count=1 -timeout 30m -run 'TestRealNodes|TestPlatformPods|TestGatekeeperPods' -v ./tests/integration/

e2e-backup: tools ## the backup end to end alone: real Velero on two clusters (backup, mapped restore, migration), the NFS store and bad locations, etcd snapshot and restore (one member and three), CSI snapshots with the real snapshot controller
	@$(WITH_TOOLS) go test -count=1 -timeout 20m -run 'TestVelero|TestBackupStores|TestEtcdSnapshot|TestEtcdThreeMemberRestore|TestCSISnapshots' -v ./tests/integration/

test-unit: ## unit tests only (no tools, no clusters)
	@go test -count=1 -short ./...

lint: ## gofmt, go vet (both modules), shell syntax
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	@go vet ./...
	@cd tools/kcp && go vet ./...
	@for f in tools/*.sh .ci/run; do bash -n "$$f"; done
	@echo "lint: ok"

bench: tools ## print control-plane start, RSS per cluster, preview/up times and tool build times
	@$(WITH_TOOLS) go test -count=1 -run '^$$' -bench . -benchtime 1x -timeout 60m ./tests/bench/

clean: kplane-bin ## stop every local cluster and delete .state (the tool cache is kept)
	@for d in .state/store/*/; do [ -d "$$d" ] && $(BIN)/store stop --env "$$(basename "$$d")" || true; done
	@for d in .state/clusters/*/; do [ -d "$$d" ] && $(BIN)/cluster delete "$$(basename "$$d")" || true; done
	@rm -rf .state
