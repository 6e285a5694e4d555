package testbed

import (
	"context"
	"fmt"
	"os"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/kplane/kplane/internal/images"
)

// CoreDNSImage is the cluster DNS of real-node clusters: CoreDNS built from its module
// (tools/build.sh node), as an image made here.
const CoreDNSImage = "kplane.local/coredns:1.15.0"

// ClusterDNS is the kube-dns Service's address, the real nodes' pods' nameserver.
const ClusterDNS = "10.96.0.10"

// coreDNS is the cluster add-on kubeadm would install, restricted: CoreDNS as kube-dns at
// ClusterDNS (the kubelets' clusterDNS), serving cluster.local from the API on port 1053 (no
// capability to bind 53; the Service maps 53 to it), with no upstream (this host has none).
const coreDNS = `apiVersion: v1
kind: ServiceAccount
metadata: {name: coredns, namespace: kube-system}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: "kplane:coredns"}
rules:
  - {apiGroups: [""], resources: [services, pods, namespaces], verbs: [list, watch]}
  - {apiGroups: [discovery.k8s.io], resources: [endpointslices], verbs: [list, watch]}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: "kplane:coredns"}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: "kplane:coredns"}
subjects: [{kind: ServiceAccount, name: coredns, namespace: kube-system}]
---
apiVersion: v1
kind: ConfigMap
metadata: {name: coredns, namespace: kube-system}
data:
  Corefile: |
    .:1053 {
        errors
        health :8080
        ready :8181
        kubernetes cluster.local in-addr.arpa ip6.arpa {
            pods insecure
            fallthrough in-addr.arpa ip6.arpa
        }
        cache 30
        loop
    }
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: coredns, namespace: kube-system, labels: {k8s-app: kube-dns}}
spec:
  replicas: 1
  selector: {matchLabels: {k8s-app: kube-dns}}
  template:
    metadata: {labels: {k8s-app: kube-dns}}
    spec:
      serviceAccountName: coredns
      securityContext: {runAsNonRoot: true, runAsUser: 65532, seccompProfile: {type: RuntimeDefault}}
      containers:
        - name: coredns
          image: %[1]s
          imagePullPolicy: Never
          args: [-conf, /etc/coredns/Corefile]
          ports: [{containerPort: 1053, protocol: UDP, name: dns}, {containerPort: 1053, protocol: TCP, name: dns-tcp}]
          readinessProbe: {httpGet: {path: /ready, port: 8181}, periodSeconds: 2}
          livenessProbe: {httpGet: {path: /health, port: 8080}, periodSeconds: 10}
          resources: {requests: {cpu: 10m, memory: 32Mi}, limits: {memory: 128Mi}}
          securityContext: {allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: {drop: [ALL]}}
          volumeMounts: [{name: config, mountPath: /etc/coredns, readOnly: true}]
      volumes: [{name: config, configMap: {name: coredns}}]
---
apiVersion: v1
kind: Service
metadata: {name: kube-dns, namespace: kube-system, labels: {k8s-app: kube-dns}}
spec:
  clusterIP: %[2]s
  selector: {k8s-app: kube-dns}
  ports:
    - {name: dns, port: 53, targetPort: 1053, protocol: UDP}
    - {name: dns-tcp, port: 53, targetPort: 1053, protocol: TCP}
`

// realNodeAddons puts the sandbox and CoreDNS images into the real nodes (none: nothing to do)
// and installs the cluster DNS, waiting until it is Ready.
func (c *Cluster) realNodeAddons(ctx context.Context) error {
	if len(c.RealNodeSockets()) == 0 {
		return nil
	}
	pause, err := buildPause(ctx)
	if err != nil {
		return err
	}
	bin, err := Binary("coredns")
	if err != nil {
		return fmt.Errorf("real nodes: %w (tools/build.sh node)", err)
	}
	content, err := os.ReadFile(bin)
	if err != nil {
		return err
	}
	dns, err := images.FromFiles("coredns", []images.File{{Path: "/coredns", Content: content, Exec: true}}, []string{"/coredns"}, images.User)
	if err != nil {
		return err
	}
	if err := c.ImportImages(ctx, map[string]v1.Image{PauseImage: pause, CoreDNSImage: dns}); err != nil {
		return err
	}
	if err := c.kubectl(ctx, strings.NewReader(fmt.Sprintf(coreDNS, CoreDNSImage, ClusterDNS)), "apply", "--server-side", "-f", "-"); err != nil {
		return err
	}
	return c.kubectl(ctx, nil, "-n", "kube-system", "rollout", "status", "deployment/coredns", "--timeout="+(90*time.Second).String())
}
