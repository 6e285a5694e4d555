// Package fleet is the fleet stack: the clusters of an environment registered with the
// management cluster (components/fleet members) and the environment's platform ApplicationSets.
// Its config is kplane:fleet in environments/<env>/fleet.yaml; kplane-fleet (./cmd/kplane-fleet)
// drives it: register -> health check -> sync in waves.
package fleet

import (
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"time"

	"github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes"
	appsv1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/apps/v1"
	corev1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/core/v1"
	metav1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/meta/v1"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi/config"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/kplane/kplane/components/fleetmember"
	"github.com/kplane/kplane/components/fleetmember/rollout"
	"github.com/kplane/kplane/internal/field"
)

// Project is the Pulumi project of the fleet stack.
const Project = "kplane-fleet"

// RancherPendingOutput lists the members Rancher imports whose registration manifest it had not
// issued yet when the program ran (the next up applies it on them).
const RancherPendingOutput = "rancherPending"

// Config is kplane:fleet: the fleet member component's FleetArgs.
type Config struct {
	fleetmember.FleetArgs
	rendered map[string]*fleetmember.Rendered // read once, by renders
}

// Parse reads kplane:fleet strictly (an unknown key is an error naming it) and validates it,
// every error at once at its path (kplane:fleet.clusters[1].name).
func Parse(raw string) (*Config, error) {
	var c Config
	dec := json.NewDecoder(bytes.NewReader([]byte(raw)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		return nil, fmt.Errorf("config kplane:fleet: %v (see docs/components/fleet.md)", err)
	}
	if err := field.Under("kplane:fleet", c.Validate()); err != nil {
		return nil, err
	}
	if p := c.Platform; p != nil { // the fleet's environment and Argo CD unless said otherwise
		p.Environment = cmp.Or(p.Environment, c.Environment)
		p.ArgoCDNamespace = cmp.Or(p.ArgoCDNamespace, c.ArgoCDNamespace)
	}
	return &c, nil
}

// RenderedPath is where the members' renders are (the platform's path, default rendered).
func (c *Config) RenderedPath() string {
	if c.Platform != nil && c.Platform.Path != "" {
		return c.Platform.Path
	}
	return fleetmember.DefaultRenderedPath
}

// Members are the automation's view of the clusters; a member's health check waits for the
// Deployments of its namespaces, by default every namespace of its render (when there is one).
func (c *Config) Members() []rollout.Cluster {
	var out []rollout.Cluster
	rendered, _ := c.renders() // none yet: each member's own namespaces (Program refuses it)
	for _, cl := range c.Clusters {
		namespaces := cl.Namespaces
		if r := rendered[cl.Name]; len(namespaces) == 0 && r != nil {
			namespaces = r.Namespaces
		}
		out = append(out, rollout.Cluster{Name: cl.Name, Kubeconfig: cl.Kubeconfig, Namespaces: namespaces,
			Pull: cl.Mode == fleetmember.Pull, ArgoCDNamespace: c.ArgoCDNamespace, Environment: c.Environment})
	}
	return out
}

// push: some member is synced by the management cluster's Argo CD.
func (c *Config) push() bool {
	return slices.ContainsFunc(c.Clusters, func(cl fleetmember.ClusterArgs) bool { return cl.Mode != fleetmember.Pull })
}

// Program registers every cluster: each is checked first (reachable, ready, the kubeconfig
// allowed to register it) — one that is not stops the program before anything is created.
func Program(ctx *pulumi.Context) error {
	c, err := Parse(config.New(ctx, "kplane").Require("fleet"))
	if err != nil {
		return err
	}
	// At preview too: a pull-request check catches it. Pull members are checked for their own.
	if c.push() {
		if err := rollout.PreflightManagement(context.Background(), c.Management, cmp.Or(c.ArgoCDNamespace, "argocd"), 10*time.Second); err != nil {
			return err
		}
	}
	for _, m := range c.Members() {
		if err := rollout.Preflight(context.Background(), m, 10*time.Second); err != nil {
			return err
		}
	}
	// Provider inputs are kept in the state: kubeconfigs go in as secrets (encrypted there).
	mgmt, err := kubernetes.NewProvider(ctx, "management", &kubernetes.ProviderArgs{Kubeconfig: secretString(c.Management)})
	if err != nil {
		return err
	}
	var pending []string // imported into Rancher, its registration not issued yet
	rendered, err := c.renders()
	if err != nil {
		return err
	}
	for _, cl := range c.Clusters {
		kc, err := os.ReadFile(cl.Kubeconfig)
		if err != nil {
			return fmt.Errorf("cluster %s: kubeconfig %s: %w", cl.Name, cl.Kubeconfig, err)
		}
		rest, err := clientcmd.RESTConfigFromKubeConfig(kc)
		if err != nil {
			return fmt.Errorf("cluster %s: kubeconfig %s: %w", cl.Name, cl.Kubeconfig, err)
		}
		server := cl.Server
		if server == "" && cl.Mode != fleetmember.Pull { // pull: its own Argo CD reaches it in-cluster
			server = rest.Host
		}
		ca := rest.CAData
		if len(ca) == 0 && rest.CAFile != "" {
			if ca, err = os.ReadFile(rest.CAFile); err != nil {
				return fmt.Errorf("cluster %s: CA %s: %w", cl.Name, rest.CAFile, err)
			}
		}
		p, err := kubernetes.NewProvider(ctx, "member-"+cl.Name, &kubernetes.ProviderArgs{Kubeconfig: secretString(string(kc))})
		if err != nil {
			return err
		}
		var agent pulumi.StringInput
		if c.Rancher != nil {
			manifest, err := rollout.RancherRegistration(context.Background(), rollout.Cluster{Name: "management", Kubeconfig: c.Management},
				cmp.Or(c.Rancher.Workspace, "fleet-default"), cl.Name, 10*time.Second)
			if err != nil {
				return err
			}
			if manifest == "" {
				pending = append(pending, cl.Name)
			} else {
				agent = secretString(manifest)
			}
		}
		if _, err := fleetmember.NewMember(ctx, cl.Name, &fleetmember.MemberArgs{Name: cl.Name, Environment: c.Environment, Server: server, CAData: string(ca),
			Labels: cl.Labels, Rendered: rendered[cl.Name], ArgoCDNamespace: c.ArgoCDNamespace, Rancher: c.Rancher,
			RancherAgent: agent, Mode: cl.Mode, Platform: c.Platform, Member: p, Management: mgmt}); err != nil {
			return err
		}
	}
	if err := c.management(ctx, mgmt); err != nil {
		return err
	}
	ctx.Export("members", pulumi.ToStringArray(names(c.Clusters)))
	// Rancher issues a member's registration once it has imported it: the next up applies it.
	ctx.Export(RancherPendingOutput, pulumi.ToStringArray(pending))
	return nil
}

// management declares what the push members need on the management cluster: Argo CD's login
// through the realm, and the platform's AppProjects and ApplicationSets.
func (c *Config) management(ctx *pulumi.Context, mgmt pulumi.ProviderResource) error {
	if c.Login != nil && c.push() { // people log in to Argo CD through the realm
		if err := argoCDLogin(ctx, *c.Login, cmp.Or(c.ArgoCDNamespace, "argocd"), mgmt); err != nil {
			return err
		}
	}
	if c.Platform != nil && c.push() { // the ApplicationSets of the push members
		if _, err := fleetmember.NewPlatform(ctx, "platform", c.Platform, pulumi.Provider(mgmt)); err != nil {
			return err
		}
	}
	return nil
}

// renders are every member's render (none without a platform), read once, before anything is
// created; the platform's AppProjects allow what they hold.
func (c *Config) renders() (map[string]*fleetmember.Rendered, error) {
	if c.rendered != nil || c.Platform == nil {
		return c.rendered, nil
	}
	out := map[string]*fleetmember.Rendered{}
	var all []*fleetmember.Rendered
	for _, cl := range c.Clusters {
		r, err := fleetmember.LoadRendered(c.RenderedPath(), c.Environment, cl.Name)
		if err != nil {
			return nil, err
		}
		out[cl.Name] = r
		all = append(all, r)
	}
	c.rendered, c.Platform.Rendered = out, all
	return out, nil
}

func names(cs []fleetmember.ClusterArgs) []string {
	var out []string
	for _, c := range cs {
		out = append(out, c.Name)
	}
	return out
}

// secretString is s as a Pulumi secret.
func secretString(s string) pulumi.StringOutput {
	return pulumi.ToSecret(pulumi.String(s)).(pulumi.StringOutput)
}

// argoCDLogin sets Argo CD's login through the realm in its argocd-cm and argocd-rbac-cm
// (server-side apply of kplane's keys only: the rest stays the installer's).
func argoCDLogin(ctx *pulumi.Context, l fleetmember.Login, namespace string, mgmt pulumi.ProviderResource) error {
	cm, rbac, err := l.ArgoCDSettings()
	if err != nil {
		return err
	}
	force := pulumi.StringMap{"pulumi.com/patchForce": pulumi.String("true")}
	var patches []pulumi.Resource
	for _, c := range []struct {
		name string
		data map[string]string
	}{{"argocd-cm", cm}, {"argocd-rbac-cm", rbac}} {
		p, err := corev1.NewConfigMapPatch(ctx, "login-"+c.name, &corev1.ConfigMapPatchArgs{
			Metadata: &metav1.ObjectMetaPatchArgs{Name: pulumi.String(c.name), Namespace: pulumi.String(namespace), Annotations: force},
			Data:     pulumi.ToStringMap(c.data)}, pulumi.Provider(mgmt))
		if err != nil {
			return err
		}
		patches = append(patches, p)
	}
	// Argo CD's server builds its OIDC client (with the realm's CA) once, when it starts: a new
	// oidc.config rolls its Deployment (the checksum in its pod template), as `kubectl rollout
	// restart` would.
	sum := sha256.Sum256([]byte(cm["oidc.config"]))
	_, err = appsv1.NewDeploymentPatch(ctx, "login-argocd-server", &appsv1.DeploymentPatchArgs{
		Metadata: &metav1.ObjectMetaPatchArgs{Name: pulumi.String("argocd-server"), Namespace: pulumi.String(namespace), Annotations: force},
		Spec: &appsv1.DeploymentSpecPatchArgs{Template: &corev1.PodTemplateSpecPatchArgs{Metadata: &metav1.ObjectMetaPatchArgs{
			Annotations: pulumi.StringMap{LoginChecksumAnnotation: pulumi.String(hex.EncodeToString(sum[:]))}}}},
	}, pulumi.Provider(mgmt), pulumi.DependsOn(patches))
	return err
}

// LoginChecksumAnnotation, on argocd-server's pod template, is the SHA-256 of the oidc.config
// kplane set.
const LoginChecksumAnnotation = "kplane.io/login-checksum"
